"""The RANDOM functions' draws for the C backend's kernel: a table per run (time steps x call sites'
elements), drawn in Python by the numpy backend's own code before the kernel runs.

Why a table and not a generator in C: the numpy backend's draws (engine.compile.random_streams) are a
counter-based hash, easy to write in C, but the distributions' inverse CDFs are scipy's (ndtri, the
incomplete gamma and beta inverses, ...). Rewritten in C they would agree to the last bit or two at
best, and a model's noise feeds its state, so the two backends would drift apart. Drawing here with the
very expression the numpy backend evaluates (its generated code, parsed and checked, the uniforms taken
for every step at once by :func:`random_streams.uniform_table`) gives the same numbers bit for bit; the
kernel only reads ``table[step, column]``. The cost is memory: steps x columns doubles a run (Earth4All:
7 681 x 1), so batches are drawn and run in chunks of runs that keep the table under ``CHUNK_BYTES``.

Only draws whose arguments (and seed) stay fixed during the run can be tabulated this way (the usual
case: numbers and constants); a distribution argument that changes over time raises NotSupported and
the model runs on numpy.
"""
from __future__ import annotations

import ast
import os

import numpy as np

from engine.compile.expressions import vname
from engine.compile.model_code import ModelCode
from engine.compile.scalar_code import NotSupported, ScalarCode

CHUNK_BYTES = int(os.environ.get("LXSD_C_RANDOM_CHUNK_BYTES", str(64 * 2**20)))   # one chunk's table at most


def _preorder(node: ast.AST):
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _preorder(child)


def _is_attr(node: ast.AST, obj: str, attr: str) -> bool:
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == obj
            and node.attr == attr)


class RandomTable:
    """Builds the draws table of a model's RANDOM call sites (ScalarCode.random_sites) for a range of runs."""

    def __init__(self, sc: ScalarCode) -> None:
        self.sc = sc
        code: ModelCode = sc.code
        self.code = code
        self.columns = sc.n_random
        statics = list(code.layout.static_names)
        allowed = set(code.globals) | {vname(n) for n in statics} | {"K", "R0", "NR"}
        exprs: list[str] = []
        self.shapes: list[tuple[int, tuple[int, ...]]] = []
        for (name, kind, j), (col, shape) in sorted(sc.random_sites.items(), key=lambda kv: kv[1][0]):
            draws = self._draw_calls(code._piece_code.get((name, kind), []))
            if j >= len(draws):
                raise NotSupported(f"{code.rvars[name].host or name}: its RANDOM calls could not be matched")
            call = draws[j]
            unif = call.args[1]
            if not (isinstance(unif, ast.Call) and _is_attr(unif.func, "_rand", "uniforms") and len(unif.args) == 9):
                raise NotSupported(f"{code.rvars[name].host or name}: an unexpected RANDOM call")
            # the uniforms of every step at once: (K, *shape, NR) for runs R0 .. R0+NR-1 of the batch
            assert isinstance(unif.func, ast.Attribute)   # checked by _is_attr above
            unif.func.attr = "uniform_table"
            site, seed, sizes, index = unif.args[1], unif.args[2], unif.args[6], unif.args[7]
            unif.args = [unif.args[0], site, seed, ast.Name("K", ast.Load()), sizes, index, ast.Name("R0", ast.Load()),
                         ast.Name("NR", ast.Load())]
            used = {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
            if not used <= allowed:
                what = code.rvars[name].host or name
                raise NotSupported(f"{what}: a RANDOM function whose arguments change during the run")
            exprs.append(ast.unparse(call))
            self.shapes.append((col, shape))
        head = f"({', '.join(vname(n) for n in statics)},) = P" if statics else "pass"
        src = ("def _rtable(P, K, R0, NR):\n    " + head + "\n    return (" + "".join(e + ", " for e in exprs)
               + ")\n")
        self.fn = code._make("_rtable", src)

    @staticmethod
    def _draw_calls(lines: list[str]) -> list[ast.Call]:
        """The numpy code's RANDOM draws in an equation, in the order they are written."""
        found: list[ast.Call] = []
        for line in lines:
            for node in _preorder(ast.parse(line, mode="exec")):
                if isinstance(node, ast.Call) and _is_attr(node.func, "_rand", "draw"):
                    found.append(node)
        return found

    def chunk_runs(self, n_steps: int) -> int:
        """How many runs one chunk's table holds (at least one)."""
        per_run = (n_steps + 1) * max(self.columns, 1) * 8
        return max(1, CHUNK_BYTES // per_run)

    def draws(self, P: tuple, n: int, r0: int, r1: int, n_steps: int) -> np.ndarray:
        """The table of runs r0 .. r1-1 of a batch of n: (r1 - r0, n_steps + 1, columns), C order."""
        nr = r1 - r0
        statics = P[:len(self.code.layout.static_names)]
        if (r0, r1) != (0, n):   # statics that vary by run: this chunk's runs
            statics = tuple(a[..., r0:r1] if isinstance(a, np.ndarray) and a.ndim and a.shape[-1] == n and n > 1
                            else a for a in statics)
        k = n_steps + 1
        with np.errstate(all="ignore"):
            values = self.fn(statics, k, r0, nr)
        out = np.empty((nr, k, max(self.columns, 1)))
        for (col, shape), v in zip(self.shapes, values, strict=True):
            e = int(np.prod(shape)) if shape else 1
            a = np.broadcast_to(np.asarray(v, dtype=float), (k, *shape, nr)).reshape(k, e, nr)
            out[:, :, col:col + e] = a.transpose(2, 0, 1)
        return out
