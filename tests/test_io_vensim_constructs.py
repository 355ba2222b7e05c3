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
    shard = m.run(n=2, seed=42, first_run=3)                        # runs 3 and 4 of a batch cut in shards
    np.testing.assert_array_equal(shard["noise"], many["noise"][3:5])


def test_random_distributions_follow_vensim_definitions(tmp_path):
    m = load_model(mdl(tmp_path, NOISE, stop=2000))
    r = m.run(n=4, seed=1)
    z = r["noise"].ravel()
    assert abs(z.mean() - 5) < 0.1 and abs(z.std() - 2) < 0.1
    cut = r["cut"].ravel()                                          # truncated half a deviation above the mean
    expected = stats.truncnorm.mean((-6 - 5) / 2, (6 - 5) / 2, loc=5, scale=2)
    assert cut.max() <= 6 and abs(cut.mean() - expected) < 0.05
    u = r["u"].ravel()
    assert u.min() >= 10 and u.max() < 20 and abs(u.mean() - 15) < 0.2
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


def test_saveper_not_a_multiple_of_time_step_runs(tmp_path):
    body = """
x = INTEG(1, 0)
\t~\tunits
\t~\t|
"""
    m = load_model(mdl(tmp_path, body, stop=3, dt=0.25, saveper=0.3))
    r = m.run()
    assert list(r.times) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0]


def test_delay_material_sinteg_and_dynamo_lookups(tmp_path):
    body = """
input = STEP(10, 2)
\t~\tunits
\t~\t|

piped = DELAY MATERIAL(input, 3, 1, 0)
\t~\tunits
\t~\t|

bounded = SINTEG(5, 0.5, 0, 4, :NA:, :NA:, :NA:)
\t~\tunits
\t~\t|

flat(0,1,2,0,10,40)
\t~\tunits
\t~\t|

pairs((0,0),(1,10),(2,40))
\t~\tunits
\t~\t|

looked = flat(1.5) + pairs(0.5)
\t~\tunits
\t~\t|
"""
    r = load_model(mdl(tmp_path, body, stop=10, dt=1)).run()
    np.testing.assert_allclose(r["piped"][0], [1, 1, 1, 0, 0, 10, 10, 10, 10, 10, 10])  # init, then input 3 back
    b = r["bounded"][0]
    assert b[0] == 0.5 and b.max() == 4 and b[-1] == 4          # the rate stops at the upper bound
    np.testing.assert_allclose(r["looked"][0], 25 + 5)


def test_sum_and_vector_select_over_a_subscripted_lookup_and_vector_elm_map(tmp_path):
    body = """
reg: r1, r2, r3
\t~\t
\t~\t|

tab[r1]([(0,0)-(10,10)],(0,0),(10,10))
\t~\tunits
\t~\t|

tab[r2]([(0,0)-(10,20)],(0,0),(10,20))
\t~\tunits
\t~\t|

tab[r3]([(0,0)-(10,30)],(0,0),(10,30))
\t~\tunits
\t~\t|

total = SUM(tab[reg!](Time))
\t~\tunits
\t~\t|

vals[reg] = 10, 20, 30
\t~\tunits
\t~\t|

order[reg] = 2, 0, 1
\t~\tunits
\t~\t|

mapped[reg] = VECTOR ELM MAP(vals[r1], order[reg])
\t~\tunits
\t~\t|
"""
    r = load_model(mdl(tmp_path, body, stop=4, dt=1)).run()
    np.testing.assert_allclose(r["total"][0], 6 * np.arange(5.0))
    np.testing.assert_allclose(r["mapped"][0, 0], [30, 10, 20])


def test_output_arguments_of_a_macro(tmp_path):
    body = """
:MACRO: STATS(a, b : diff, both)
STATS = a + b
\t~\ta
\t~\t|

diff = a - b
\t~\ta
\t~\t|

both = a * b
\t~\ta
\t~\t|

:END OF MACRO:
s = STATS(Time, 2 : d out, p out)
\t~\tunits
\t~\t|
"""
    r = load_model(mdl(tmp_path, body, stop=3, dt=1)).run()
    t = np.arange(4.0)
    np.testing.assert_allclose(r["s"][0], t + 2)
    np.testing.assert_allclose(r["d_out"][0], t - 2)
    np.testing.assert_allclose(r["p_out"][0], 2 * t)


def test_missing_data_is_a_clear_error(tmp_path):
    bare = """
dummy data
\t~\tUnits
\t~\tReplace with actual data.
\t|

y = dummy data * 2
\t~\tunits
\t~\t|
"""
    with pytest.raises(ModelError, match="dummy data.*DATA variable"):
        load_model(mdl(tmp_path, bare))
    xls = """
series := GET XLS DATA('missing.xlsx', 'sheet', '1', 'B2')
\t~\tunits
\t~\t|
"""
    with pytest.raises(ModelError, match="series.*'missing.xlsx', which is not in"):
        load_model(mdl(tmp_path, xls, name="x.mdl"))


@pytest.mark.parametrize("text, why", [
    (('<xmile xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0" version="1.0"><header/>'
      '<sim_specs><start>0</start><stop>1</stop><dt>1</dt></sim_specs></xmile>'), "no <model>"),
    ('<xmile xmlns="http://www.systemdynamics.org/XMILE" version="1.0"><header/></xmile>',
     "no <model>.*legacy XMILE namespace"),
    (('<xmile xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0" version="1.0"><model><variables>'
      '<aux name="a"><eqn>1</eqn>'), "not well-formed"),
    (('<xmile xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0" version="1.0"><model>'
      '<variables/></model></xmile>'), "no variables"),
])
def test_empty_legacy_or_truncated_xmile_is_an_error(tmp_path, text, why):
    p = tmp_path / "m.xmile"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ModelError, match=why):
        load_model(p)


def test_conformance_matches_times_at_vensims_printed_precision():
    from engine.io.conformance import MODEL_SUFFIXES, _indices
    ours = np.arange(0, 20.0001, 0.03125)
    assert _indices(ours, np.array([10.0312, 10.0625, 0.03125])) == [321, 322, 1]
    assert _indices(ours, np.array([10.04])) == [-1]
    assert ".stmx" in MODEL_SUFFIXES
