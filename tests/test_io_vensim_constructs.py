"""Vensim constructs that published models use and PySD's translator lacks (issue 14): RANDOM
functions with seeded per-run streams, inline comments, TIME STEP$, macros after a group header."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from engine import load_model
from engine.errors import ModelError

CONTROL = """
FINAL TIME  = {stop}
\t~\tMonth
\t~\t|

INITIAL TIME  = 0
\t~\tMonth
\t~\t|

SAVEPER  = {saveper}
\t~\tMonth
\t~\t|

TIME STEP  = {dt}
\t~\tMonth
\t~\t|
"""


def mdl(tmp_path, body: str, stop=10, dt=1, saveper="TIME STEP", name="m.mdl"):
    """Write a small Vensim model (equations separated by blank lines) and return its path."""
    p = tmp_path / name
    p.write_text("{UTF-8}\n" + body.strip() + "\n\n" + CONTROL.format(stop=stop, dt=dt, saveper=saveper),
                 encoding="utf-8")
    return p


NOISE = """
noise = RANDOM NORMAL(-6, 20, 5, 2, 1) {a comment inside the equation}
\t~\tunits
\t~\t|

cut = RANDOM NORMAL(-6, 6, 5, 2, 1)
\t~\tunits
\t~\t|

u = RANDOM UNIFORM(10, 20, 7)
\t~\tunits
\t~\t|

ex[reg] = RANDOM EXPONENTIAL(0, 100, 1, 2, 3)
\t~\tunits
\t~\t|

reg: a, b, c
\t~\t
\t~\t|
"""


def test_random_streams_are_seeded_and_independent_of_batch_size(tmp_path):
    m = load_model(mdl(tmp_path, NOISE, stop=200))
    one = m.run(seed=42)
    many = m.run(n=5, seed=42)
    again = m.run(n=3, seed=42)
    other = m.run(seed=43)
    x1 = one["noise"][0]
    np.testing.assert_array_equal(x1, many["noise"][0])           # run 0 whatever the batch size
    np.testing.assert_array_equal(many["noise"][2], again["noise"][2])
    assert not np.array_equal(many["noise"][0], many["noise"][1])  # runs differ
    assert not np.array_equal(x1, other["noise"][0])               # seeds differ
    assert len(np.unique(x1)) == len(x1)                           # a new draw every step


def test_random_distributions_follow_vensim_definitions(tmp_path):
    m = load_model(mdl(tmp_path, NOISE, stop=2000))
    r = m.run(n=4, seed=1)
    z = r["noise"].ravel()
    assert abs(z.mean() - 5) < 0.1 and abs(z.std() - 2) < 0.1
    cut = r["cut"].ravel()                                          # truncated half a deviation above the mean
    expected = stats.truncnorm.mean((-6 - 5) / 2, (6 - 5) / 2, loc=5, scale=2)
    assert cut.max() <= 6 and abs(cut.mean() - expected) < 0.05
    u = r["u"].ravel()
    assert 10 <= u.min() and u.max() < 20 and abs(u.mean() - 15) < 0.2
    e = r["ex"]                                                     # (runs, times, r)
    assert e.shape[-1] == 3 and not np.array_equal(e[..., 0], e[..., 1])  # one draw per element
    assert abs(e.mean() - 3) < 0.15 and e.min() >= 1                # shift 1 + stretch 2 * Exp(1)


def test_pink_noise_keeps_mean_and_standard_deviation(tmp_path):
    body = """
p = RANDOM PINK NOISE(10, 2, 4, 5)
\t~\tunits
\t~\t|
"""
    r = load_model(mdl(tmp_path, body, stop=4000, dt=0.25)).run(seed=3)
    x = r["p"][0]
    assert abs(x.mean() - 10) < 0.6 and abs(x.std() - 2) < 0.4
    lag = np.corrcoef(x[:-1], x[1:])[0, 1]
    assert lag > 0.9                                                # correlated over 4 months at dt 0.25


def test_time_step_dollar_inside_a_macro_and_macros_after_a_group(tmp_path):
    body = """
********************************************************
\t.group one
********************************************************~
\t\tA group header followed by two macros
\t|

:MACRO: POS(INPUT)
POS=MAX(INPUT,1e-010)
\t~\tINPUT
\t~\t|

:END OF MACRO:
:MACRO: STEPPER(x)
STEPPER = x * TIME STEP$
\t~\tx
\t~\t|

:END OF MACRO:
********************************************************
\t.group two
********************************************************~
\t\tnotes
\t|

y = POS(-3) + STEPPER(4)
\t~\tunits
\t~\t|
"""
    r = load_model(mdl(tmp_path, body, dt=0.5)).run()
    np.testing.assert_allclose(r["y"][0], 1e-10 + 2.0)


def test_unknown_random_function_names_the_variable(tmp_path):
    body = """
x = RANDOM MARKOV(1, 2)
\t~\tunits
\t~\t|
"""
    with pytest.raises(ModelError, match="x.*RANDOM MARKOV"):
        load_model(mdl(tmp_path, body))
