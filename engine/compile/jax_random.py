"""The RANDOM functions on the JAX backend: tables of the numpy code's own draws, read by the compiled step.

The numpy step draws with ``_rand.draw(func, _rand.uniforms(...), args...)`` (engine.compile.random_streams:
a counter-based hash and scipy's inverse CDFs, which XLA cannot trace). As on the C backend
(engine.compile.random_table), each call site's draws for every step of the run are computed before the
loop, in numpy, by that very expression with the uniforms of all steps at once
(:func:`random_streams.uniform_table`), so the numbers are numpy's bit for bit. The step's source is
rewritten so that each draw reads its table's row for the step holding t (``_rt.rnd_row``); the tables
reach the step as extra entries of its ``D`` argument (after the DELAY FIXED outputs). A site is known by
its call's text (its site number makes it unique), so steps saving different variables share the tables.

Only draws whose arguments (and seed) stay fixed during the run can be tabulated (numbers and constants,
the usual case); any other raises :class:`Unsupported` and the model runs on numpy. The cost is memory:
steps x elements x runs doubles a site (Earth4All: 7 681 a run), so batches are cut into chunks of at most
:data:`engine.compile.random_table.CHUNK_BYTES` of tables (:meth:`JaxDraws.chunk_runs`).
"""
from __future__ import annotations

import ast
import types

import numpy as np

from engine.compile import random_table
from engine.compile.expressions import vname
from engine.compile.jax_runtime import Unsupported
from engine.compile.model_code import ModelCode


def _is_attr(node: ast.AST, obj: str, attr: str) -> bool:
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == obj
            and node.attr == attr)


def _draw_calls(tree: ast.AST) -> list[ast.Call]:
    """The ``_rand.draw`` calls of a parsed source, outermost first, in the order they are written."""
    found: list[ast.Call] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Call) and _is_attr(node.func, "_rand", "draw"):
            found.append(node)
            return   # a draw's arguments hold no draw (the generator writes none)
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    return found


class JaxDraws:
    """A model's RANDOM call sites: their tables for a batch, and step sources that read them."""

    def __init__(self, code: ModelCode) -> None:
        self.code = code
        dynamic = tuple(n for n in code.rvars if code.phase.get(n) == "dynamic")
        tree = ast.parse(code.dynamic_source(dynamic, functional=True))
        self.sites: dict[str, int] = {}   # a draw call's text -> its table's number
        self.elements = 0                  # values a run's tables hold per step, at most
        statics = list(code.layout.static_names)
        allowed = set(code.globals) | {vname(n) for n in statics} | {"K", "R0", "NR"}
        exprs: list[str] = []
        for call in _draw_calls(tree):
            text = ast.unparse(call)
            if text in self.sites:
                continue
            unif = call.args[1] if len(call.args) > 1 else None
            if not (isinstance(unif, ast.Call) and _is_attr(unif.func, "_rand", "uniforms") and len(unif.args) == 9):
                raise Unsupported("an unexpected RANDOM call")
            table = ast.Call(ast.Attribute(ast.Name("_rand", ast.Load()), "uniform_table", ast.Load()),
                             [unif.args[0], unif.args[1], unif.args[2], ast.Name("K", ast.Load()), unif.args[6],
                              unif.args[7], ast.Name("R0", ast.Load()), ast.Name("NR", ast.Load())], [])
            whole = ast.Call(call.func, [call.args[0], table, *call.args[2:]], [])
            used = {n.id for n in ast.walk(whole) if isinstance(n, ast.Name)}
            if not used <= allowed:
                raise Unsupported("a RANDOM function whose arguments change during the run (its draws cannot "
                                  "be tabulated before the run)")
            try:
                sizes = ast.literal_eval(unif.args[6])   # the variable's full shape (an upper bound of the region's)
            except ValueError:
                raise Unsupported("a RANDOM call over a shape the compiled backend cannot read") from None
            self.sites[text] = len(exprs)
            self.elements += int(np.prod(sizes)) if sizes else 1
            exprs.append(ast.unparse(ast.fix_missing_locations(whole)))
        head = f"({', '.join(vname(n) for n in statics)},) = P" if statics else "pass"
        src = "def _jrtable(P, K, R0, NR):\n    " + head + "\n    return (" + "".join(e + ", " for e in exprs) + ")\n"
        compiled = compile(src, f"<linxiang-sd-jax:{code.model.name}:_jrtable>", "exec")
        fn_code = next(c for c in compiled.co_consts if isinstance(c, types.CodeType) and c.co_name == "_jrtable")
        self._fn = types.FunctionType(fn_code, code.globals, "_jrtable")

    def rewrite(self, source: str) -> str:
        """A step's source with each draw reading its table: ``_rt.rnd_row(D[first + j], t, t0, dt)``, the
        tables following the DELAY FIXED outputs in D."""
        first = len(self.code.layout.delay_fixed)
        tree = ast.parse(source)
        sites = self.sites

        class _Swap(ast.NodeTransformer):
            def visit_Call(self, node: ast.Call) -> ast.AST:
                if _is_attr(node.func, "_rand", "draw"):
                    j = sites.get(ast.unparse(node))
                    if j is None:
                        raise Unsupported("a RANDOM call the compiled backend did not tabulate")
                    row = ast.Subscript(ast.Name("D", ast.Load()), ast.Constant(first + j), ast.Load())
                    return ast.Call(ast.Attribute(ast.Name("_rt", ast.Load()), "rnd_row", ast.Load()),
                                    [row, ast.Name("t", ast.Load()), ast.Name("t0", ast.Load()),
                                     ast.Name("dt", ast.Load())], [])
                return self.generic_visit(node)

        return ast.unparse(ast.fix_missing_locations(_Swap().visit(tree))) + "\n"

    def chunk_runs(self, n_steps: int) -> int:
        """How many runs one chunk's tables hold within random_table.CHUNK_BYTES (at least one)."""
        return max(1, random_table.CHUNK_BYTES // ((n_steps + 1) * 8 * max(self.elements, 1)))

    def tables(self, P: tuple, n_steps: int, r0: int, n: int) -> tuple[np.ndarray, ...]:
        """Each site's draws for runs r0 .. r0+n-1 of the batch (statics P of these n runs): (n_steps + 1,
        *its shape, n), the numpy code's values at every step."""
        statics = P[:len(self.code.layout.static_names)]
        k = n_steps + 1
        with np.errstate(all="ignore"):
            values = self._fn(statics, k, r0, n)
        # each (K, *region, n): the uniforms' axes, which the distribution's arguments broadcast against
        return tuple(np.ascontiguousarray(np.asarray(v, dtype=float)) for v in values)
