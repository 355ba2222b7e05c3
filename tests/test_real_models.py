"""The published models in ../shared/real-models (issue 14): which run, Earth4All against Vensim's
own output, and a clear error for the ones whose data are not shipped (skipped without the folder)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import load_model
from engine.errors import ModelError

ROOT = Path(os.environ.get("REAL_MODELS", Path(__file__).resolve().parents[2] / "shared" / "real-models"))
if not ROOT.is_dir():
    ROOT = Path("/work/shared/real-models")
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason=f"real models not found at {ROOT} (set REAL_MODELS)")

# models that run as published (a short stretch here; benchmarks/real_models.py runs them whole)
RUNS = [
    "WRLD3-03/wrld3-03.mdl",
    "beer-game/RealBeer4-Sterman13.mdl",
    "industrial-dynamics/IDch15/IDch15d.mdl",
    "scientific-revolution/scirev7.mdl",
    "scientific-revolution/scirev8.mdl",
    "thyroid-dynamics/thyroid-2008-d.mdl",
    "wonderland/Wonderland3.mdl",
    "pink-noise/PinkNoise2010.mdl",
    "earth4all/mov220501-18 E4A-global jr GL.mdl",
    "pysd-cookbook/Aging_Chain.mdl",
    "pysd-cookbook/Capability Trap.mdl",
    "pysd-cookbook/Goldstone_Tilly_2001.mdl",
    "pysd-cookbook/SIR.mdl",
    "pysd-cookbook/Sales_Agent_Market_Building_Dynamics.mdl",
    "xmile/Dice.xmile",
    "xmile/community corona 8.xmile",
]

# models that cannot run as shipped: each gives a one-line error naming what is missing
ERRORS = {
    "covid19-us-homer/homer v8/Covid19US v8.mdl": "Covid19US data.xlsx', which is not in",
    "theil-statistics/Theil_2011.mdl": "DATA variable",
    "FREE/FREE6/FREE6-original/free 6.mdl": "DATA variable",
    "c-learn/C-LEARN v77 for Vensim.xmile": "no <model>",
}


@pytest.mark.parametrize("rel", RUNS)
def test_published_model_runs(rel):
    m = load_model(ROOT / rel)
    ts = m.time
    steps = max(1, round(min(ts.stop - ts.start, 40 * ts.saveper) / ts.saveper))
    r = m.run(stop=ts.start + steps * ts.saveper, seed=1)
    df = r.to_dataframe()
    assert len(df) == steps + 1
    values = df.to_numpy(dtype=float)
    assert np.isfinite(values[np.abs(values) < 1e37]).all()     # :NA: aside, every value is a number


@pytest.mark.parametrize("rel, message", list(ERRORS.items()))
def test_unrunnable_model_says_why(rel, message):
    with pytest.raises(ModelError, match=message) as info:
        load_model(ROOT / rel)
    # one line per problem, each naming the file
    assert all(line.startswith(str(ROOT / rel)) for line in str(info.value).strip().splitlines())


def test_earth4all_tltl_matches_vensims_output():
    """Vensim's own TLTL run (317 columns at whole years): at least 312 columns within PySD's rule
    |ours - vensim| <= 1e-5 + 0.05 |ours| at every year."""
    from engine.cli import original_column

    m = load_model(ROOT / "earth4all/mov220501-18 E4A-global jr TLTL.mdl")
    r = m.run(saveper=1.0)
    df = r.to_dataframe().droplevel(0).rename(columns=lambda c: original_column(m.model, c))
    ref = pd.read_csv(ROOT / "earth4all/vensim_output_tltl_years.csv").set_index("Time")
    ref = ref[[c for c in ref.columns if c != "Time.1"]]

    def key(s):
        return " ".join(str(s).lower().replace("_", " ").replace('"', "").split())

    ours = {key(c): c for c in df.columns}
    ok = 0
    for c in ref.columns:
        a = df[ours[key(c)]].reindex(ref.index).to_numpy(float)
        b = ref[c].to_numpy(float)
        ok += bool(((np.abs(a - b) <= 1e-5 + 0.05 * np.abs(a)) | np.isnan(b)).all())
    assert len(ref.columns) == 317
    assert ok >= 312, f"{ok} of 317 columns match"


def test_c_learn_runs_with_its_elements_ordered():
    """C-LEARN's cumulative emission targets form a loop between variables (emissions with cumulative
    constraints -> constrained emissions -> ... -> previous emissions per capita vs RS, through tPrev),
    not between their elements: ordered element by element, as Vensim does, it runs. No tool checks its
    numbers (PySD and SDEverywhere stop on it): its historical CO2 is checked against the record."""
    m = load_model(ROOT / "c-learn/C-LEARN v77 for Vensim.mdl")
    r = m.run(stop=2000.0)
    co2 = r["atm_conc_co2"][0, :, 0]     # deterministic climate sensitivity
    assert co2[0] == pytest.approx(284.7, abs=0.1)       # 1850
    assert co2[-1] == pytest.approx(369.7, rel=0.02)     # 2000: Mauna Loa's annual mean 369.7 ppm
