"""Sharding a batch of runs in-process or over Dask (``dask.distributed``).

Every analysis (ensembles, Sobol runs, calibration restarts) draws all its samples up
front on the client, cuts them into shards of a fixed size, and hands the shards to an
:class:`Executor`. The in-process executor runs the shards one after the other; the
Dask executor sends them to the workers of a local cluster (``workers=K``) or of an
existing scheduler (``scheduler="tcp://host:port"``). The shards and the code that runs
them are the same either way, so the numbers are identical for the same seed.

Workers do not receive the compiled model (generated code does not pickle); they get a
:class:`ModelRef` (the model file and its options) and compile it once per worker
process, cached in :data:`_MODEL_CACHE`.

>>> with get_executor() as ex:                                      # doctest: +SKIP
...     outs = ex.map(run_shard, ref, shards)
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Protocol
from collections.abc import Callable, Iterable, Iterator

from engine.errors import EngineError

CONNECT_TIMEOUT_S = 10.0
LOCAL_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 2 ** 30,
                       "distributed.worker.profile.enabled": False,
                       "distributed.worker.memory.target": False,
                       "distributed.worker.memory.spill": False}
_MODEL_CACHE: dict[tuple, Any] = {}


@dataclass(frozen=True)
class ModelRef:
    """What a worker needs to compile the model itself: its file and options."""

    path: str
    check_units: bool | None = None

    def load(self):
        key = (os.path.abspath(self.path), self.check_units)
        model = _MODEL_CACHE.get(key)
        if model is None:
            from engine import load_model

            model = load_model(self.path, check_units=self.check_units)
            _MODEL_CACHE[key] = model
        return model


class Loads(Protocol):
    """What runs a shard needs of its model reference: ``load()`` gives the compiled model (a
    :class:`ModelRef` on a worker, or a stand-in holding a model compiled here)."""

    def load(self) -> Any: ...


def remember(ref: ModelRef, model) -> None:
    """Seed the cache with a model the client compiled already (the in-process path)."""
    _MODEL_CACHE[(os.path.abspath(ref.path), ref.check_units)] = model


def shards(n: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) index pairs covering range(n) in pieces of ``size``."""
    if size < 1:
        raise EngineError(f"chunk size must be at least 1, got {size}")
    return [(a, min(a + size, n)) for a in range(0, n, size)]


class Executor:
    """Runs ``fn(ref, payload)`` for each payload, in order; the in-process default."""

    kind = "in-process"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.kind

    def imap(self, fn: Callable, ref: ModelRef, payloads: Iterable) -> Iterator[tuple[int, Any]]:
        """Yield (index, result) as each payload finishes (in order here); each is a part of the
        progress reported (engine.progress), its time steps within it."""
        from engine import progress

        payloads = list(payloads)
        for i, p in enumerate(payloads):
            with progress.part(i, len(payloads)):
                result = fn(ref, p)
            yield i, result

    def map(self, fn: Callable, ref: ModelRef, payloads: list) -> list:
        out: list = [None] * len(payloads)
        for i, r in self.imap(fn, ref, payloads):
            out[i] = r
        return out


class DaskExecutor(Executor):
    """Shards over a Dask cluster: a LocalCluster of K processes, or an existing scheduler."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 timeout: float = CONNECT_TIMEOUT_S) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - dask is a dependency
            raise EngineError(f"dask.distributed is not installed: {exc}") from None
        self.cluster = None
        self.client = None
        if scheduler:
            if not scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
                raise EngineError(f"--scheduler {scheduler!r}: expected an address like tcp://HOST:PORT")
            try:
                self.client = _connect(scheduler, timeout)
            except EngineError:
                raise
            except (OSError, TimeoutError) as exc:
                raise EngineError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s: "
                                  f"{exc.__class__.__name__}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - dask raises many kinds here
                raise EngineError(f"cannot connect to the Dask scheduler at {scheduler}: "
                                  f"{exc.__class__.__name__}: {exc}") from None
            self.kind = f"dask scheduler {scheduler}"
            self._wait_for_workers(scheduler, timeout)
        else:
            if workers is None or workers < 1:
                raise EngineError(f"--workers must be at least 1, got {workers}")
            import dask

            try:
                # numpy-heavy batches: Dask's default MALLOC_TRIM_THRESHOLD_ (64 KiB), its stack
                # profiler and memory spilling halve the engine's speed in a worker; turn them off
                with dask.config.set(LOCAL_WORKER_CONFIG):
                    self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                dashboard_address=":0")
                self.client = Client(self.cluster, timeout=timeout)
            except Exception as exc:  # noqa: BLE001
                self.close()
                raise EngineError(f"cannot start a local Dask cluster of {workers} workers: {exc}") from None
            self.kind = f"dask LocalCluster ({workers} worker processes)"

    def _wait_for_workers(self, scheduler: str, timeout: float) -> None:
        """A scheduler without workers would hold the shards forever: wait ``timeout`` for one, else say so."""
        import sys

        assert self.client is not None
        try:
            if self.client.scheduler_info().get("workers"):
                return
            print(f"lxsd: the Dask scheduler at {scheduler} has no workers yet; waiting {timeout:g} s for one",
                  file=sys.stderr)
            self.client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            self.close()
            raise EngineError(f"the Dask scheduler at {scheduler} has no workers (waited {timeout:g} s); start "
                              f"some with `dask worker {scheduler}`, or raise --connect-timeout") from None
        except OSError as exc:
            self.close()
            raise EngineError(f"lost the Dask scheduler at {scheduler}: {exc}") from None

    def close(self) -> None:
        for obj in (self.client, self.cluster):
            if obj is not None:
                with contextlib.suppress(Exception):  # closing is best effort
                    obj.close()
        self.client = self.cluster = None

    def imap(self, fn: Callable, ref: ModelRef, payloads: Iterable) -> Iterator[tuple[int, Any]]:
        from dask.distributed import as_completed

        payloads = list(payloads)
        assert self.client is not None, "the executor is closed"
        futures = [self.client.submit(fn, ref, p, pure=False, key=f"lxsd-{fn.__name__}-{i}-{os.urandom(4).hex()}")
                   for i, p in enumerate(payloads)]
        index = {f.key: i for i, f in enumerate(futures)}
        from engine import progress

        progress.show()   # work sent to a cluster: the client cannot estimate it, and it is long by nature
        progress.done(0, len(futures))
        try:
            for finished, fut in enumerate(as_completed(futures), 1):
                try:
                    result = fut.result()
                except EngineError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a worker died or a task failed
                    raise EngineError(f"shard {index[fut.key]} failed on the cluster: "
                                      f"{exc.__class__.__name__}: {exc}") from None
                progress.done(finished, len(futures))
                yield index[fut.key], result
        finally:
            for f in futures:
                f.release()


def _connect(scheduler: str, timeout: float):
    """A Client of the scheduler at ``scheduler``, or an error within about ``timeout`` seconds.

    Dask's own ``timeout`` bounds opening the connection but not its handshake: a live port that is not a
    Dask scheduler (a web server, say) accepts and then never answers, and Client() would wait forever.
    So the Client is made in a thread that is given up on after the deadline."""
    import threading

    import dask
    from dask.distributed import Client

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with dask.config.set({"distributed.comm.timeouts.connect": f"{timeout}s"}):
                box["client"] = Client(scheduler, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="lxsd-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 2.0)
    if thread.is_alive():
        raise EngineError(f"the address {scheduler} did not answer as a Dask scheduler within {timeout:g} s "
                          f"(something may listen there that is not a Dask scheduler); check the address and port, "
                          f"or raise --connect-timeout")
    if "error" in box:
        raise box["error"]
    return box["client"]


def get_executor(workers: int | None = None, scheduler: str | None = None,
                 timeout: float = CONNECT_TIMEOUT_S) -> Executor:
    """In-process unless ``workers`` (a local cluster) or ``scheduler`` (an address) is given."""
    if workers is not None and scheduler:
        raise EngineError("give either --workers or --scheduler, not both")
    if workers is None and not scheduler:
        return Executor()
    return DaskExecutor(workers=workers, scheduler=scheduler, timeout=timeout)
