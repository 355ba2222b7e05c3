"""Loops between variables that are not loops between their elements run, ordered element by element
as Vensim orders them (issue 14, C-LEARN); a loop between elements stays an error naming them."""
from __future__ import annotations

import numpy as np
import pytest

from engine import load_model
from engine.errors import ModelError
from engine.resolve import graph

HEAD = """{UTF-8}
Target: (t1-t3) ~~|
tNext: (t2-t3) -> tPrev ~~|
tPrev: (t1-t2) -> tNext ~~|
"""
CONTROL = """
FINAL TIME = 2 ~ Month ~|
INITIAL TIME = 0 ~ Month ~|
SAVEPER = 1 ~ Month ~|
TIME STEP = 1 ~ Month ~|
"""


def _model(tmp_path, body: str):
    f = tmp_path / "m.mdl"
    f.write_text(HEAD + body + CONTROL, encoding="utf-8")
    return load_model(f)


def test_chain_through_a_mapped_subrange(tmp_path):
    # x[t2] needs y[t1], which needs x[t1]: a loop between x and y, none between elements
    m = _model(tmp_path, """
x[t1] = 1 ~~|
x[tNext] = y[tPrev] + 1 ~~|
y[Target] = x[Target] * 2 + Time ~~|
""")
    r = m.run()
    t = np.array([0.0, 1.0, 2.0])
    x1 = np.ones(3)
    y1 = 2 * x1 + t
    x2 = y1 + 1
    y2 = 2 * x2 + t
    x3 = y2 + 1
    np.testing.assert_allclose(r["x"][0], np.stack([x1, x2, x3], axis=1))
    np.testing.assert_allclose(r["y"][0], np.stack([y1, 2 * x2 + t, 2 * x3 + t], axis=1))


def test_self_reference_and_initial_values(tmp_path):
    # a variable reading its own earlier element, and a stock's initial value through the chain
    m = _model(tmp_path, """
c[t1] = 5 ~~|
c[tNext] = c[tPrev] * 2 ~~|
s[Target] = INTEG(c[Target], c[Target]) ~~|
""")
    r = m.run()
    np.testing.assert_allclose(r["c"][0, 0], [5, 10, 20])
    np.testing.assert_allclose(r["s"][0, :, 0], [5, 10, 15])


def test_loop_between_elements_is_an_error_naming_them(tmp_path):
    with pytest.raises(ModelError, match=r"algebraic loop .*\bx\[t\d\] -> y\[t\d\]|algebraic loop .*y\[t\d\] -> x"):
        _model(tmp_path, """
x[t1] = y[t2] ~~|
x[tNext] = y[tPrev] ~~|
y[Target] = x[Target] + 1 ~~|
""").run()


def test_sum_reads_every_element(tmp_path):
    # total reads all of x, and x[t3] reads total: a loop between elements, reported
    with pytest.raises(ModelError, match="algebraic loop"):
        _model(tmp_path, """
x[t1] = 1 ~~|
x[t2] = 2 ~~|
x[t3] = total ~~|
total = SUM(x[Target!]) ~~|
""").run()
    # summing only the elements computed before: runs
    m = _model(tmp_path, """
x[t1] = 1 ~~|
x[t2] = 2 ~~|
x[t3] = part ~~|
part = SUM(x[tPrev!]) ~~|
""")
    np.testing.assert_allclose(m.run()["x"][0, 0], [1, 2, 3])


def test_loops_and_condensed_order():
    g = {"a": {"b"}, "b": {"a", "c"}, "c": set(), "d": {"d"}, "e": {"a"}}
    blocks = graph.loops(g)
    assert blocks == [frozenset({"a", "b"}), frozenset({"d"})]
    order = graph.condensed_order(g, blocks)
    assert order.index("c") < order.index(0) < order.index("e")
    assert 1 in order


def test_list_mapping_reads_the_mapped_element(tmp_path):
    # Vensim's mapping by element list: element A of Agg stands for the subrange CA of COP
    f = tmp_path / "lm.mdl"
    f.write_text("""{UTF-8}
COP: a1, a2, b1 ~~|
CA: a1, a2 ~~|
Agg: A, B -> (COP: CA, b1) ~~|
val[Agg] = 10, 20 ~~|
y[COP] = val[Agg] + 1 ~~|
""" + CONTROL, encoding="utf-8")
    r = load_model(f).run()
    np.testing.assert_allclose(r["y"][0, 0], [11, 11, 21])


def test_compiled_backend_runs_the_chunks(tmp_path, capsys):
    """The chunks are written with _rt.assemble, which the compiled backend has: same numbers, no
    fallback."""
    pytest.importorskip("jax", reason="the compiled backend needs jax")
    f = tmp_path / "m.mdl"
    f.write_text(HEAD + "x[t1] = 1 ~~|\nx[tNext] = y[tPrev] + 1 ~~|\ny[Target] = x[Target] * 2 + Time ~~|\n"
                 + CONTROL, encoding="utf-8")
    rn = load_model(f, backend="numpy").run()
    rj = load_model(f, backend="jax").run()
    assert rj.backend == "jax" and capsys.readouterr().err == ""     # compiled, no fallback notice
    np.testing.assert_allclose(rj["y"], rn["y"], rtol=1e-12)


def test_stock_initial_values_ordered_by_element(tmp_path):
    # a loop between a stock and its initial values, in the initial-value order only
    m = _model(tmp_path, """
s[t1] = INTEG(1, 1) ~~|
s[tNext] = INTEG(1, s[tPrev] * 2) ~~|
""")
    np.testing.assert_allclose(m.run()["s"][0], [[1, 2, 4], [2, 3, 5], [3, 4, 6]])


@pytest.mark.parametrize("backend", ["numba", "c"])
def test_scalar_backends_fall_back_on_element_chunks(tmp_path, capsys, backend):
    """The scalar kernel (numba, C) does not compile element chunks: it falls back to numpy with one line."""
    if backend == "numba":
        pytest.importorskip("numba", reason="the numba backend needs numba")
    else:
        from engine.compile import c_backend

        if c_backend.compiler() is None:
            pytest.skip("the C backend needs a C compiler (cc or $CC)")
    f = tmp_path / "m.mdl"
    f.write_text(HEAD + "x[t1] = 1 ~~|\nx[tNext] = y[tPrev] + 1 ~~|\ny[Target] = x[Target] * 2 + Time ~~|\n"
                 + CONTROL, encoding="utf-8")
    rn = load_model(f, backend="numpy").run()
    rb = load_model(f, backend=backend).run()
    err = capsys.readouterr().err
    assert rb.backend == "numpy" and "element by element" in err and len(err.strip().splitlines()) == 1
    np.testing.assert_array_equal(rb["y"], rn["y"])
