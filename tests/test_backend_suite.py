"""Every SDXorg suite model PySD passes (tests/data/pysd_passing.txt), run on both backends: the same
numbers to 1e-10 relative (issue 12). Oracle: the numpy backend. Skipped without the suite or jax.

Each model is compiled by XLA (seconds each), so `make test` runs every fourth listed model (48 of 192);
``LXSD_BACKEND_SUITE=all pytest tests/test_backend_suite.py`` runs them all.

Known difference (integration, issue 12): subscripted_round's INTEGER of values that sit exactly on a whole
number after floating-point arithmetic differs by one on XLA (var_integer3: 0.25 relative), marked xfail.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax", reason="the compiled backend needs jax")

ROOT = Path(__file__).resolve().parents[1]
SUITE = Path(os.environ.get("SD_TEST_MODELS", ROOT.parent / "shared" / "sd-test-models"))
TESTS = SUITE / "tests" if (SUITE / "tests").is_dir() else SUITE
LISTED = [ln.strip() for ln in (ROOT / "tests" / "data" / "pysd_passing.txt").read_text(encoding="utf-8").splitlines()
          if ln.strip() and not ln.startswith("#")]
REL = 1e-10
if os.environ.get("LXSD_BACKEND_SUITE") != "all":
    LISTED = LISTED[::4]
KNOWN = {"subscripted_round/test_subscripted_round.mdl":
         "INTEGER on values that are whole numbers only up to rounding differs by one under XLA"}


def both(model: Path):
    from engine import compile_model
    from engine.io.pysd_import import import_model
    from engine.parse.model_file import model_from_dict

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        data_files = [f for f in (model.parent / "data.tab", model.parent / "data.csv") if f.is_file()]
        d = import_model(model, data_files=data_files)
        runs = []
        for backend in ("numpy", "jax"):
            m = compile_model(model_from_dict(d, str(model)), check_units=False, backend=backend)
            runs.append(m.run())
    return runs


@pytest.mark.slow
@pytest.mark.skipif(not TESTS.is_dir(), reason=f"SDXorg test-models not found at {TESTS}")
@pytest.mark.parametrize("rel", [pytest.param(r, marks=pytest.mark.xfail(reason=KNOWN[r], strict=True))
                                 if r in KNOWN else r for r in LISTED])
def test_suite_model_equal_on_both_backends(rel):
    rn, rj = both(TESTS / rel)
    np.testing.assert_array_equal(rn.times, rj.times)
    for v in rn.variables:
        a, b = rn[v], rj[v]
        scale = np.maximum(np.abs(a), np.nanmax(np.abs(a), initial=0.0) * 1e-6) + 1e-300
        with np.errstate(all="ignore"):
            err = np.abs(a - b) / scale
        same_nan = np.isnan(a) == np.isnan(b)
        assert same_nan.all(), f"{v}: NaN in one backend only"
        assert np.nanmax(err, initial=0.0) <= REL, f"{v}: relative difference {np.nanmax(err):.2e} ({rj.backend})"
