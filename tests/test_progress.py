"""Progress of long runs (issue 15, item 3): the integrator loop and sharded analyses report the fraction
done (engine.progress); the CLI shows it on stderr (--progress, a terminal and a long run, never with
--quiet); Ctrl-C ends a command with one line and exit 130."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine import load_model, progress
from engine.analysis.distributed import Executor, ModelRef
from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
DECAY = str(ROOT / "tests" / "models" / "decay.toml")   # 0 to 10, dt 0.5: 20 steps


def test_no_listener_no_reporter():
    assert progress.hook(1e30) is None
    assert not progress.listening()


@pytest.mark.parametrize("method", ["euler", "rk4", "adaptive"])
def test_loop_reports_fraction_of_time(method):
    seen: list[float] = []
    model = load_model(DECAY)
    with progress.listen(seen.append, interval=0.0):
        res = model.run(method=method)
    assert seen, "no progress reported"
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert seen[-1] == pytest.approx(1.0)
    if method != "adaptive":   # the adaptive solver's trial points may step back
        assert seen == sorted(seen)
        assert len(seen) == 20   # one report a step with interval 0
    plain = model.run(method=method)   # reporting changes nothing in the results
    np.testing.assert_array_equal(res["x"], plain["x"])


def test_throttle_keeps_reports_rare():
    seen: list[float] = []
    with progress.listen(seen.append, interval=3600.0):
        load_model(DECAY).run(dt=0.001)
    assert len(seen) == 1   # the first report only: the next would be an hour later


def test_min_cost_decides_from_the_estimate():
    model = load_model(DECAY)
    small: list[float] = []
    with progress.listen(small.append, min_cost=1e15, interval=0.0):
        model.run()
    assert small == []
    big: list[float] = []
    with progress.listen(big.append, min_cost=1e6, interval=0.0):
        model.run(dt=0.001)      # 10 000 steps x the model's values x (1 run + overhead) > 1e6
    assert big


def test_shards_are_parts_of_the_whole():
    """In-process shards each take a third; the steps of a shard its share; the ends are reported."""
    model = load_model(DECAY)
    ref = ModelRef(DECAY)
    seen: list[float] = []

    def shard(_ref, n):
        return model.run(n=n)["x"].shape

    with progress.listen(seen.append, interval=0.0):
        out = list(Executor().imap(shard, ref, [1, 2, 3]))
    assert [i for i, _ in out] == [0, 1, 2]
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(1.0)
    for third in (1 / 3, 2 / 3):
        assert any(abs(f - third) < 1e-12 for f in seen)
    assert sum(1 for f in seen if f <= 1 / 3 + 1e-12) == 20   # the first shard's 20 steps in [0, 1/3]


def test_shards_count_toward_the_estimate():
    """Many shards of a small run are as long as one large run: the sibling count multiplies the estimate."""
    model = load_model(DECAY)
    seen: list[float] = []
    with progress.listen(seen.append, min_cost=5e6, interval=0.0):
        model.run()          # alone: below the threshold
        assert seen == []
        list(Executor().imap(lambda _r, _p: model.run(), ModelRef(DECAY), list(range(200))))
    assert seen and seen[-1] == pytest.approx(1.0)


# ------------------------------------------------------------------ the command line
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_cli(monkeypatch, stream: io.StringIO, *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stderr", stream)
    rc = main(list(argv))
    return rc, stream.getvalue()


def test_cli_progress_flag(monkeypatch, tmp_path):
    rc, err = _run_cli(monkeypatch, io.StringIO(), "run", DECAY, "--progress", "--out", str(tmp_path / "a.csv"))
    assert rc == 0
    assert "lxsd run:   5% done" in err and "lxsd run: 100% done" in err   # first step (1 of 20) and the end
    assert "\r" not in err   # not a terminal: whole lines


def test_cli_quiet_wins(monkeypatch, tmp_path):
    rc, err = _run_cli(monkeypatch, _Terminal(), "run", DECAY, "--progress", "--quiet", "--dt", "0.0001",
                       "--out", str(tmp_path / "a.csv"))
    assert rc == 0
    assert "done" not in err


def test_cli_terminal_shows_long_runs_only(monkeypatch, tmp_path):
    rc, err = _run_cli(monkeypatch, _Terminal(), "run", DECAY, "--out", str(tmp_path / "a.csv"))
    assert rc == 0 and "done" not in err   # 20 steps: under engine.limits.PROGRESS_MIN_WORK
    rc, err = _run_cli(monkeypatch, _Terminal(), "run", DECAY, "--dt", "0.0001", "--out", str(tmp_path / "b.csv"))
    assert rc == 0
    assert "\rlxsd run:   0% done" in err          # rewritten in place
    # cleared before the next message, and erased at the end of a completed run
    assert "\x1b[Kwrote 1 scenario(s)" in err
    assert err.endswith(f"to {tmp_path / 'b.csv'}\n")   # nothing after the last message


def test_cli_not_a_terminal_shows_nothing_by_default(monkeypatch, tmp_path):
    rc, err = _run_cli(monkeypatch, io.StringIO(), "run", DECAY, "--dt", "0.0001", "--out", str(tmp_path / "a.csv"))
    assert rc == 0 and "done" not in err


def test_ctrl_c_in_process(monkeypatch, capsys):
    from engine.simulation import CompiledModel

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(CompiledModel, "run", interrupted)
    rc = main(["run", DECAY, "--progress"])
    err = capsys.readouterr().err
    assert rc == 130
    assert err.strip().splitlines()[-1] == "lxsd run: interrupted"
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ctrl_c_subprocess(tmp_path):
    """SIGINT in the middle of a long run: one line, exit 130, no traceback, no file written."""
    out = tmp_path / "a.csv"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", DECAY, "--dt", "0.000001", "--force",
                             "--progress", "--out", str(out)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env, cwd=ROOT)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()    # the first progress line: the loop is running
        assert "lxsd run:" in first and "done" in first, first
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, rest
    assert "Traceback" not in rest
    assert rest.strip().splitlines()[-1] == "lxsd run: interrupted"
    assert not out.exists()
