"""Shared by the backend tests (test_backend.py, test_backend_numba.py, test_backend_c.py): a model built
from sections, the scalar backends' comparison with numpy, and the builtins model they all run."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from engine import compile_model
from engine.parse import model_from_dict

REL = 1e-10   # every saved value agrees with numpy's to this, relative


def build(backend, aux=None, const=None, stocks=None, flows=None, lookups=None, data=None, dims=None,
          time=None, name="t", subranges=None):
    """A model from its sections (0..10, dt 0.25, saving every 0.5 unless ``time`` says otherwise), on ``backend``."""
    d = {"model": {"name": name}, "time": {"start": 0, "stop": 10, "dt": 0.25, "saveper": 0.5, **(time or {})}}
    for key, section in [("dimensions", dims), ("subranges", subranges), ("constants", const), ("stocks", stocks),
                         ("flows", flows), ("lookups", lookups), ("data", data)]:
        if section:
            d[key] = section
    if aux:
        d["auxiliaries"] = {k: (v if isinstance(v, dict) else {"equation": v}) for k, v in aux.items()}
    return compile_model(model_from_dict(d, f"{name}.toml"), check_units=False, backend=backend)


def assert_same_scalar(rn, rb, backend: str) -> None:
    """A scalar backend's (numba, C) results equal numpy's: ran there, same times, variables, shapes and NaNs,
    values to REL (values near zero: REL on the variable's scale)."""
    assert rb.backend == backend, "the run fell back to numpy"
    np.testing.assert_array_equal(rn.times, rb.times)
    assert rn.variables == rb.variables
    for v in rn.variables:
        a, b = rn[v], rb[v]
        assert a.shape == b.shape, v
        assert (np.isnan(a) == np.isnan(b)).all(), f"{v}: NaN in one backend only"
        scale = np.maximum(np.abs(a), np.nanmax(np.abs(a), initial=0.0) * 1e-6) + 1e-300
        with np.errstate(all="ignore"):
            err = np.nanmax(np.abs(a - b) / scale, initial=0.0)
        assert err <= REL, f"{v}: relative difference {err:.2e}"


def suite_pair(model: Path, backend: str):
    """A suite model (with its data.tab/data.csv when present), imported once and compiled on numpy and on
    ``backend`` (the fallback line silenced: the caller checks where it ran)."""
    from engine.io.pysd_import import import_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data_files = [f for f in (model.parent / "data.tab", model.parent / "data.csv") if f.is_file()]
        d = import_model(model, data_files=data_files)
        mn = compile_model(model_from_dict(d, str(model)), check_units=False, backend="numpy")
        mb = compile_model(model_from_dict(d, str(model)), check_units=False, backend=backend)
    mb._say_fallback = False
    return mn, mb
