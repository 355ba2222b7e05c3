"""Compiling a model with one large dimension takes time linear in its size (issue 15, item 3: 20 000
elements took 10 s and 80 000 took 192 s, as every "is e an element, and where" scanned the tuple).

No wall time is asserted: elements are strings that count their equality comparisons, and compiling a
model twice as large must not compare four times as often (a scan per element is quadratic; a look-up
compares once). Wall-time figures: docs/security.md (benchmarks/bench_dimension.py)."""
from __future__ import annotations

import pickle

import pytest

from engine import compile_model, limits, read_model
from engine.ir import Elements


class _Counted(str):
    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _Counted.comparisons += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


def _model_text(n: int) -> str:
    els = [f"e{i}" for i in range(n)]
    q = ", ".join(f'"{e}"' for e in els)
    half = ", ".join(f'"{e}"' for e in els[: n // 2])
    return "\n".join([
        '[model]', 'name = "bigdim"', '[time]', 'start = 0', 'stop = 2', 'dt = 1',
        '[dimensions]', f'd = [{q}]', '[subranges]', f'h = {{ of = "d", elements = [{half}] }}',
        '[constants.c]', 'dims = ["d"]', 'value = [' + ", ".join(str(i % 7 + 1) for i in range(n)) + ']',
        '[stocks.s]', 'dims = ["d"]', 'initial = "c"', 'inflows = ["g"]',
        '[flows.g]', 'dims = ["d"]', 'equations = { default = "0.1 * s", e0 = "0.2 * s", h = "0.05 * s[h]" }',
        '[auxiliaries.hs]', 'equation = "SUM(s[h!]) + s[e1]"',
        '[auxiliaries.onh]', 'dims = ["h"]', 'equation = "s[h] * 2 + c[h]"',
        '[auxiliaries.sm]', 'dims = ["d"]', 'equation = "SMOOTH(s, 2) + VMAX(c[d!])"', ""])


def _comparisons(tmp_path, n: int) -> int:
    path = tmp_path / f"m{n}.toml"
    path.write_text(_model_text(n), encoding="utf-8")
    model = read_model(str(path))
    # every element a separate counting string (as if parsed from different places of the file)
    model.dimensions = {d: tuple(_Counted(e) for e in els) for d, els in model.dimensions.items()}
    model.subranges = {s: (p, tuple(_Counted(e) for e in els)) for s, (p, els) in model.subranges.items()}
    _Counted.comparisons = 0
    compiled = compile_model(model)
    count = _Counted.comparisons
    assert len(compiled.run().to_dataframe().columns) > n   # the model runs, one column an element
    return count


def test_compile_compares_elements_linearly(tmp_path):
    small, large = _comparisons(tmp_path, 500), _comparisons(tmp_path, 1000)
    assert large < 3 * max(small, 1), (small, large)   # linear: about 2x; a scan per element: 4x


def test_elements_behave_as_a_tuple():
    e = Elements(("a", "b", "a", "c"))
    assert e == ("a", "b", "a", "c") and hash(e) == hash(("a", "b", "a", "c"))
    assert e.index("a") == 0 and e.index("c") == 3 and e.index("a", 1) == 2
    assert "b" in e and "z" not in e and ["a"] not in e
    with pytest.raises(ValueError):
        e.index("z")
    back = pickle.loads(pickle.dumps(e))
    assert back == e and type(back) is Elements and back.index("c") == 3
    assert e[1:] == ("b", "a", "c") and len(e) == 4


def test_dimension_limit():
    """Raised from 50 000 to a million now that compiling is linear; past it, refused unless forced."""
    limits.check_dimensions({"d": ("x",) * 80_000})   # refused before the fix, fine now
    too_many = {"d": ("x",) * (limits.MAX_ELEMENTS + 1)}
    with pytest.raises(limits.LimitError, match=r"dimension 'd' has 1000001 elements.*--force"):
        limits.check_dimensions(too_many, "m.toml")
    with limits.forced():
        limits.check_dimensions(too_many)
