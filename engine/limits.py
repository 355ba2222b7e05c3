"""Cost and memory estimates made before a run, and the limits past which a run needs ``--force``.

A careless ``--dt 1e-6``, ``stop = 1e8``, ``--sweep k=0:1:10000000`` or ``--samples 1e9`` would run for
hours or die of MemoryError part-way. Every run is estimated first (time steps, runs in the batch, values
held and saved) and refused past the limits below with the figures and the way out; ``--force`` (CLI) or
:func:`forced` (Python) runs it anyway. The limits are documented in ``docs/security.md``.

Only counts are estimated here (steps, bytes), never seconds: how long a step takes depends on the machine
and the model, so no wall time is promised.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Mapping

from engine.errors import EngineError

MAX_STEPS = 10_000_000          # time steps of one run (stop - start) / dt
MAX_RUNS = 10_000_000           # runs (scenarios x sweep values x samples) in one call
MAX_STEP_WORK = 20_000_000_000  # steps x runs x model cells: the number of cell updates
MAX_ELEMENTS = 1_000_000        # elements of one dimension (reading and compiling a million: about 50 s, 0.7 GB)
MEMORY_SHARE = 0.8              # of the memory available when the run starts
FALLBACK_MEMORY = 8 * 2**30     # bytes, where the system does not say what is available
# Progress is shown on a terminal for work past PROGRESS_MIN_WORK (engine.progress, the CLI). Work counts value
# updates as above, plus VECTOR_OVERHEAD a value for numpy's fixed cost of each operation, so that one long run
# of a small batch counts as long. Measured on model/linxiang.toml (755 values, 160 steps, one core): 1 run
# 0.22 s, 100 runs 0.24 s, 1 000 runs 0.53 s, i.e. about 400 element updates' worth of fixed cost per
# operation and 2e8 updates a second in large batches: the threshold is about one second of work.
VECTOR_OVERHEAD = 400
PROGRESS_MIN_WORK = 200_000_000

_force = False


class LimitError(EngineError):
    """A run or a model is past a documented limit; ``--force`` runs it anyway."""


def set_force(on: bool) -> None:
    """Turn the limits off (``--force``) or on for this process."""
    global _force
    _force = bool(on)


@contextlib.contextmanager
def forced() -> Iterator[None]:
    """``with forced(): model.run(...)`` runs past the limits."""
    global _force
    old, _force = _force, True
    try:
        yield
    finally:
        _force = old


def is_forced() -> bool:
    return _force


_memory_read: list[float] = [-math.inf, 0.0]   # (when, bytes) of the last reading


def available_memory() -> int:
    """Bytes of memory available now (Linux's MemAvailable, else physical pages), or a fallback. Read at most
    once a second: reading /proc/meminfo costs more than a small model's run, and memory moves slower."""
    now = time.monotonic()
    if now - _memory_read[0] < 1.0:
        return int(_memory_read[1])
    _memory_read[:] = [now, float(_read_memory())]
    return int(_memory_read[1])


def _read_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return FALLBACK_MEMORY


def _refuse(what: str, fix: str) -> None:
    if not _force:
        raise LimitError(f"{what}; {fix}, or add --force to run it anyway")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_clock(start: float, stop: float, dt: float, saveper: float, where: str = "") -> int:
    """The number of time steps of a run; LimitError past MAX_STEPS, EngineError for non-finite settings."""
    pre = f"{where}: " if where else ""
    for name, value in (("start", start), ("stop", stop), ("dt", dt), ("saveper", saveper)):
        if not math.isfinite(value):
            raise EngineError(f"{pre}{name} must be a finite number, got {value}")
    if not dt > 0:
        raise EngineError(f"{pre}dt must be a positive number, got {dt}")
    steps = (stop - start) / dt
    if not math.isfinite(steps):
        raise EngineError(f"{pre}(stop - start) / dt = ({stop} - {start}) / {dt} is not a finite number of steps")
    if steps > MAX_STEPS:
        _refuse(f"{pre}this run takes {steps:.3g} time steps ((stop - start) / dt = ({stop:g} - {start:g}) / {dt:g}), "
                f"over the limit of {MAX_STEPS:.0e}", "use a larger dt or a shorter run")
    return max(0, int(math.ceil(steps - 1e-9)))


def check_runs(n_runs: int, what: str = "runs") -> None:
    """LimitError if a batch has more than MAX_RUNS runs (before the batch is even built)."""
    if n_runs > MAX_RUNS:
        _refuse(f"{n_runs:.3g} {what} in one call, over the limit of {MAX_RUNS:.0e}",
                "use fewer values or samples, or split the batch")


def check_run(steps: int, n_runs: int, cells: int, saved_cells: int, saved_times: int, where: str = "") -> None:
    """Refuse a run whose work (steps x runs x cells) or memory is past the limits.

    cells: values of the model per run (every variable's elements); saved_cells: values saved per run and
    time; saved_times: times saved. Memory counts the saved results plus ten working copies of the state
    (a Runge-Kutta step keeps several), at 8 bytes a value.
    """
    pre = f"{where}: " if where else ""
    check_runs(n_runs)
    work = float(steps) * n_runs * max(cells, 1)
    if work > MAX_STEP_WORK:
        _refuse(f"{pre}this run needs {work:.3g} value updates ({steps:.3g} steps x {n_runs} runs x {cells} values), "
                f"over the limit of {MAX_STEP_WORK:.0e}", "use a larger dt, a shorter run or fewer runs")
    need = 8.0 * n_runs * (float(saved_cells) * saved_times + 10.0 * max(cells, 1))
    have = MEMORY_SHARE * available_memory()
    if need > have:
        _refuse(f"{pre}this run needs about {_fmt_bytes(need)} of memory ({n_runs} runs x {saved_times} saved times "
                f"x {saved_cells} saved values, plus the working state) and {_fmt_bytes(have)} is available",
                "save fewer variables (--vars), save less often (--saveper), run fewer runs at a time "
                "(chunks), or write an ensemble to --out in shards")


def progress_work(steps: float, n_runs: int, rvars: Mapping[str, object]) -> float:
    """Estimated work of a run, to decide whether to show its progress: steps x values x (runs + overhead).

    rvars: the model's resolved variables (anything with ``sizes``); lookups count like the rest."""
    cells = sum(math.prod(getattr(rv, "sizes", ())) for rv in rvars.values())
    return float(steps) * max(cells, 1) * (n_runs + VECTOR_OVERHEAD)


def check_dimensions(dimensions: dict[str, tuple[str, ...]], where: str = "") -> None:
    """Refuse a model with a dimension past MAX_ELEMENTS (reading and compiling it take time and memory that grow
    with its size: benchmarks/bench_dimension.py, figures in docs/security.md)."""
    pre = f"{where}: " if where else ""
    for name, elems in dimensions.items():
        if len(elems) > MAX_ELEMENTS:
            _refuse(f"{pre}dimension {name!r} has {len(elems)} elements, over the limit of {MAX_ELEMENTS} "
                    f"(reading and compiling a model take time and memory that grow with a dimension's size: "
                    f"about a minute and 0.7 GB a million elements)",
                    "split the dimension or aggregate its elements")


def check_inputs(names: list[str], values: list, runs: list[str], where: str = "") -> None:
    """EngineError naming the first input (constant or data series) that is NaN or infinite, and its run.

    values: one array per name, shape (*dims, B) with B = 1 or len(runs); a data input is (times, values).
    Found here, before the run, a NaN input is reported as itself (not as a stock overflowing later).
    """
    import numpy as np

    pre = f"{where}: " if where else ""
    # the common case, every input finite, in one pass over all of them; the loop below finds the culprit
    flat = [np.asarray(arr, dtype=float).ravel()
            for value in values for arr in (value if isinstance(value, tuple) else (value,))]
    if not flat or np.isfinite(np.concatenate(flat)).all():
        return
    for name, value in zip(names, values, strict=True):
        arrays = value if isinstance(value, tuple) else (value,)
        for arr in arrays:
            a = np.asarray(arr, dtype=float)
            bad = ~np.isfinite(a)
            if bad.any():
                pos = np.argwhere(bad)[0]
                run = runs[int(pos[-1])] if a.ndim and a.shape[-1] == len(runs) and len(runs) > 1 else None
                where_run = f" in run {run!r}" if run is not None else ""
                raise EngineError(f"{pre}input {name!r} is {a[tuple(pos)]}{where_run} at the start; inputs must be "
                                  f"finite numbers (check the scenario, --set/--sweep value or data file)")
