"""Progress of long runs: the integrator loop and sharded analyses report the fraction done to a listener.

Nobody listens by default, and then reporting costs nothing: :func:`hook` returns None and the loop
skips one ``is not None`` test a step. A program (the CLI, a notebook) listens with::

    with progress.listen(lambda fraction: print(f"{fraction:.0%}")):
        model.run(...)

Work is nested: an ensemble's scenarios are parts of the whole, a scenario's shards parts of it, a
shard's time steps parts of the shard (:func:`part`); each loop reports its own fraction and the
listener sees the fraction of the whole. Reports are thrown away unless ``interval`` seconds have passed
since the last one (a loop may call on every step), except the end of the last part.

A listener may ask to be shown only work whose estimated cost reaches ``min_cost`` (value updates:
steps x runs x model values, as :mod:`engine.limits` counts them): a loop passes its estimate to
:func:`hook`, multiplied by the number of sibling parts it belongs to (an ensemble of 40 small shards is
as long as one shard 40 times larger); once shown, progress stays shown until the listener closes.

The state lives in a :class:`contextvars.ContextVar`, so threads (Dask's) do not report into a
listener they did not start under.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Callback = Callable[[float], None]
Reporter = Callable[[float], None]


class _Listener:
    """A callback with its throttle (``interval`` seconds) and whether progress is shown yet."""

    def __init__(self, callback: Callback, min_cost: float, interval: float) -> None:
        self.callback = callback
        self.min_cost = min_cost
        self.interval = interval
        self.shown = min_cost <= 0
        self.last = -math.inf
        self.reported = -1.0

    def report(self, lo: float, width: float, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        value = lo + width * min(max(float(fraction), 0.0), 1.0)
        if value == self.reported:   # the end of a loop, then the end of its part: one report
            return
        self.last, self.reported = now, value
        self.callback(value)


@dataclass(frozen=True)
class _Scope:
    listener: _Listener
    lo: float = 0.0       # this scope covers [lo, hi) of the whole
    hi: float = 1.0
    siblings: float = 1.0  # how many parts like this one the whole has (for the cost estimate)


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("lxsd_progress", default=None)


@contextlib.contextmanager
def listen(callback: Callback, min_cost: float = 0.0, interval: float = 0.5) -> Iterator[None]:
    """Call ``callback(fraction)`` (0 to 1, of everything run inside) at most every ``interval`` seconds.

    min_cost: report only work estimated at this many value updates or more (0: everything)."""
    token = _scope.set(_Scope(_Listener(callback, min_cost, interval)))
    try:
        yield
    finally:
        _scope.reset(token)


def listening() -> bool:
    """Whether a listener is installed in this context (cheap; for code that would prepare a report)."""
    return _scope.get() is not None


def hook(cost: Callable[[], float] | float = math.inf) -> Reporter | None:
    """A reporter ``report(fraction)`` for a loop about to start, or None when nobody is to be told.

    cost: the loop's estimated value updates (or a function giving them, called only when someone
    listens); progress is shown once the estimate times the number of sibling parts reaches the
    listener's ``min_cost``."""
    scope = _scope.get()
    if scope is None:
        return None
    listener = scope.listener
    if not listener.shown:
        estimate = cost() if callable(cost) else cost
        listener.shown = estimate * scope.siblings >= listener.min_cost
        if not listener.shown:
            return None
    lo, width = scope.lo, scope.hi - scope.lo

    def report(fraction: float) -> None:
        listener.report(lo, width, fraction)

    return report


@contextlib.contextmanager
def part(index: int, count: int) -> Iterator[None]:
    """Run part ``index`` (from 0) of ``count`` equal parts of the current work; reports inside it are
    scaled into its share, and its end is reported when progress is shown (the last part's always)."""
    scope = _scope.get()
    if scope is None or count < 1:
        yield
        return
    width = (scope.hi - scope.lo) / count
    lo = scope.lo + index * width
    token = _scope.set(_Scope(scope.listener, lo, lo + width, scope.siblings * count))
    try:
        yield
    finally:
        _scope.reset(token)
    done(index + 1, count)


def done(finished: int, count: int) -> None:
    """``finished`` of ``count`` equal parts of the current work are done (shards back from workers)."""
    scope = _scope.get()
    if scope is None or count < 1 or not scope.listener.shown:
        return
    scope.listener.report(scope.lo, scope.hi - scope.lo, finished / count, force=finished >= count)


def show() -> None:
    """Show progress whatever the estimates (work sent to a cluster, whose batches the client cannot see)."""
    scope = _scope.get()
    if scope is not None:
        scope.listener.shown = True
