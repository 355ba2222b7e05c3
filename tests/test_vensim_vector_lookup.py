"""VECTOR LOOKUP (issue 14, item 7): a subscripted variable's values as a lookup table with evenly
spaced x values, in the modes Vensim documents (0 interpolate, 2 backward, 3 extrapolate, 4 forward);
the other modes are refused with a one-line error naming the variable."""
from __future__ import annotations

import numpy as np
import pytest

from engine import load_model
from engine.errors import ModelError

MODEL = """{{UTF-8}}
d: (e1-e3) ~~|
r: a, b ~~|
v[d] = 1, 2, 4 ~~|
m[r, d] = 1, 2, 4; 10, 20, 40; ~~|
x = Time * 2.5 - 2.5 ~~|
y = VECTOR LOOKUP(v[e1], x, 0, 10, {mode}) ~~|
tail = VECTOR LOOKUP(v[e2], x, 0, 10, 0) ~~|
rows[r] = VECTOR LOOKUP(m[r, e1], x, 0, 10, 0) ~~|
FINAL TIME = 6 ~~|
INITIAL TIME = 0 ~~|
SAVEPER = 1 ~~|
TIME STEP = 1 ~~|
"""
X = np.arange(7) * 2.5 - 2.5       # -2.5, 0, 2.5, ..., 12.5


def _run(tmp_path, mode):
    f = tmp_path / "vl.mdl"
    f.write_text(MODEL.format(mode=mode), encoding="utf-8")
    return load_model(f).run()


@pytest.mark.parametrize("mode, want", [
    (0, np.interp(X, [0, 5, 10], [1, 2, 4])),                       # held beyond the ends
    (3, np.where(X < 0, 1 + X / 5, np.where(X > 10, 4 + (X - 10) * 2 / 5, np.interp(X, [0, 5, 10], [1, 2, 4])))),
    (2, np.array([1, 1, 1, 2, 2, 4, 4])),                            # the point at or below x
    (4, np.array([1, 1, 2, 2, 4, 4, 4])),                            # the point at or above x
])
def test_modes(tmp_path, mode, want):
    r = _run(tmp_path, mode)
    np.testing.assert_allclose(r["y"][0], want, atol=1e-12)


def test_starting_element_and_rows(tmp_path):
    r = _run(tmp_path, 0)
    np.testing.assert_allclose(r["tail"][0], np.interp(X, [0, 10], [2, 4]))
    np.testing.assert_allclose(r["rows"][0][:, 0], np.interp(X, [0, 5, 10], [1, 2, 4]))
    np.testing.assert_allclose(r["rows"][0][:, 1], np.interp(X, [0, 5, 10], [10, 20, 40]))


def test_area_mode_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"y: .*VECTOR LOOKUP.*mode 1") as info:
        _run(tmp_path, 1)
    assert len(str(info.value).strip().splitlines()) == 1
