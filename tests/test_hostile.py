"""The hostile corpus (tests/hostile/cases, issue 15): every bad input gives its one-line error.

Each case is a ``NAME.expect`` file (TOML): ``args`` is the lxsd command line (``{file}`` is the case's own
``NAME.toml`` input, ``{dir}`` the cases folder) and ``error`` a text the error must contain. The command
must exit non-zero, print no traceback, and say what is wrong in one line per problem.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.cli import main

CASES = Path(__file__).parent / "hostile" / "cases"
EXPECTS = sorted(CASES.glob("*.expect"))


def _case(expect: Path) -> tuple[list[str], str]:
    spec = tomllib.loads(expect.read_text(encoding="utf-8"))
    file = expect.with_suffix(".toml")
    args = [a.replace("{file}", str(file)).replace("{dir}", str(CASES)) for a in spec["args"]]
    return args, spec["error"]


def test_corpus_is_complete():
    # every bad input has its expected error, and every case that names an input has it
    inputs = {p.stem for p in CASES.glob("*.toml")} - {"ok_model", "data_model", "sc_loop_b"}
    assert inputs <= {p.stem for p in EXPECTS}
    for e in EXPECTS:
        if "{file}" in e.read_text(encoding="utf-8"):
            assert e.with_suffix(".toml").exists(), e.name
    assert len(EXPECTS) >= 40


@pytest.mark.parametrize("expect", EXPECTS, ids=[p.stem for p in EXPECTS])
def test_hostile_input_gives_its_one_line_error(expect, capsys, monkeypatch):
    args, error = _case(expect)
    monkeypatch.chdir(CASES)
    try:
        rc = main(args)
    except SystemExit as exc:          # argparse refuses a malformed flag itself (exit status 2)
        rc = exc.code
    err = capsys.readouterr().err
    assert rc not in (0, None), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert error in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if lines[0].startswith("usage:"):   # argparse prints its usage above its one-line error
        lines = [ln for ln in lines if ln.startswith("lxsd ")]
    # a header "lxsd run: N problem(s):" and one line a problem, or a single "error:" line
    assert all(len(ln) < 400 for ln in lines), err
    assert len(lines) <= 3, err
