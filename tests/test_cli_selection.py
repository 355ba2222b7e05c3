"""lxsd run: element columns in --vars, element overrides in --set, declared ranges, check with scenarios."""
from __future__ import annotations

import io
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent
SUBS = str(ROOT / "tests" / "models" / "subscripts.toml")
DECAY = str(ROOT / "tests" / "models" / "decay.toml")


def lxsd(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_vars_can_name_one_element():
    code, out, _ = lxsd("run", SUBS, "--vars", "k[b],total", "--stop", "2")
    assert code == 0
    df = pd.read_csv(io.StringIO(out))
    assert list(df.columns) == ["scenario", "time", "k[b]", "total"]
    assert df["k[b]"].iloc[0] == pytest.approx(30.0)


def test_vars_unknown_element_is_an_error():
    code, _, err = lxsd("run", SUBS, "--vars", "k[zz]")
    assert code == 2 and "k[zz]" in err and "elements of k" in err


def test_set_one_element_of_a_subscripted_constant():
    code, out, _ = lxsd("run", SUBS, "--set", "share[c]=0.9", "--vars", "k", "--stop", "0")
    assert code == 0
    row = pd.read_csv(io.StringIO(out)).iloc[0]
    assert row["k[a]"] == pytest.approx(20.0) and row["k[c]"] == pytest.approx(90.0)


def test_set_outside_the_range_is_refused_unless_allowed():
    code, _, err = lxsd("run", DECAY, "--set", "k=5")
    assert code == 2 and "outside its range [0.1, 1]" in err and "--allow-outside-range" in err
    code, out, _ = lxsd("run", DECAY, "--set", "k=5", "--allow-outside-range", "--vars", "x", "--stop", "1")
    assert code == 0 and "x" in out


def test_sweep_outside_the_range_is_refused():
    code, _, err = lxsd("run", DECAY, "--sweep", "k=0.5:2:3")
    assert code == 2 and "--sweep" in err


def test_check_with_scenarios_reports_a_bad_scenario(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""
        [scenario]
        name = "bad"
        [set]
        k = 7
    """), encoding="utf-8")
    code, _, err = lxsd("check", DECAY, str(bad))
    assert code == 2 and "set.k" in err and "range" in err


def test_run_no_units_runs_a_model_with_unit_problems(tmp_path):
    model = tmp_path / "m.toml"
    model.write_text(Path(DECAY).read_text(encoding="utf-8").replace('unit = "t/year"', 'unit = "t"'),
                     encoding="utf-8")
    code, _, err = lxsd("run", str(model), "--stop", "1")
    assert code == 2 and "--no-units" in err
    code, out, _ = lxsd("run", str(model), "--stop", "1", "--no-units")
    assert code == 0 and out.startswith("scenario,time")
