"""The CLI's progress line on stderr (engine.progress reports, lxsd shows).

When it is shown: with ``--progress`` always; with ``--quiet`` never; otherwise when stderr is a terminal
and the work's estimate reaches ``engine.limits.PROGRESS_MIN_WORK`` (about a second of work). On a terminal
the line is rewritten in place (``\\r``) and cleared before anything else is written to stderr, so messages
never land in the middle of it; elsewhere (``--progress`` into a file or a pipe) it is one line a report,
every few seconds.
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from engine import limits, progress

TTY_INTERVAL = 0.5     # seconds between rewrites of the line on a terminal
PLAIN_INTERVAL = 5.0   # seconds between lines elsewhere


class ProgressLine:
    """``lxsd run: 42% done, 12 s, about 17 s left`` on ``stream``."""

    def __init__(self, label: str, stream: TextIO, tty: bool) -> None:
        self.label, self.stream, self.tty = label, stream, tty
        self.t0 = time.monotonic()
        self.on_screen = False   # a line without its newline is on the terminal
        self.last = -1.0
        self.first: tuple[float, float] | None = None   # (time, fraction) of the first report

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        text = f"{self.label}: {fraction:4.0%} done, {now - self.t0:.0f} s"
        if self.first is None:
            self.first = (now, fraction)
        # the time left from the pace since the first report (loading and compiling came before it)
        pace = (fraction - self.first[1]) / (now - self.first[0]) if now > self.first[0] else 0.0
        if fraction - self.first[1] >= 0.02 and fraction < 1 and pace > 0:
            text += f", about {(1 - fraction) / pace:.0f} s left"
        self.last = fraction
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.on_screen = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """End the line on the terminal, so that the next message starts on a new line."""
        if self.on_screen:
            self.stream.write("\n")
            self.stream.flush()
            self.on_screen = False

    def finish(self, completed: bool) -> None:
        """At the end: on a terminal, erase the line (completed) or end it (stopped, so the figure stays
        above the message that says why); elsewhere a last line at 100 % if the work completed."""
        if self.tty:
            if completed and self.on_screen:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self.on_screen = False
            self.clear()
        elif completed and 0 <= self.last < 1:
            self(1.0)


class _Stderr:
    """sys.stderr while a progress line may be on the terminal: clears it before any other text."""

    def __init__(self, raw: TextIO, line: ProgressLine) -> None:
        self._raw, self._line = raw, line

    def write(self, text: str) -> int:
        if self._line.on_screen and text:
            self._raw.write("\r\x1b[K")
            self._line.on_screen = False
        return self._raw.write(text)

    def __getattr__(self, name: str):
        return getattr(self._raw, name)


def wanted(flag: bool, quiet: bool, stream: TextIO) -> tuple[bool, float] | None:
    """(always, minimum work) for the listener, or None when progress is not to be shown."""
    if quiet:
        return None
    if flag:
        return True, 0.0
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return False, float(limits.PROGRESS_MIN_WORK)
    return None


@contextlib.contextmanager
def shown(command: str, flag: bool = False, quiet: bool = False) -> Iterator[None]:
    """Listen for progress during a command, as the options and the terminal say (see the module doc)."""
    raw = sys.stderr
    decision = wanted(flag, quiet, raw)
    if decision is None:
        yield
        return
    tty = bool(getattr(raw, "isatty", lambda: False)())
    line = ProgressLine(f"lxsd {command}", raw, tty)
    completed = False
    with progress.listen(line, min_cost=decision[1], interval=TTY_INTERVAL if tty else PLAIN_INTERVAL):
        if tty:
            sys.stderr = _Stderr(raw, line)  # type: ignore[assignment]
        try:
            yield
            completed = True
        finally:
            if tty:
                sys.stderr = raw
            line.finish(completed)
