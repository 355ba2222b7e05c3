"""Linxiang SD: a vectorised system-dynamics engine.

Pipeline: parse (``engine.parse``) -> resolve (``engine.resolve``) -> compile
(``engine.compile``) -> integrate (``engine.integrate``) -> results (``engine.results``).

>>> from engine import load_model
>>> m = load_model("model/linxiang.toml")                    # doctest: +SKIP
>>> res = m.run(params={"rd_share_target": [0.026, 0.028, 0.03]})  # doctest: +SKIP
>>> res.to_dataframe()                                        # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from engine.errors import EngineError, ModelError, Problem, SimulationError
from engine.ir import Model

__all__ = ["load_model", "compile_model", "read_model", "EngineError", "ModelError", "SimulationError", "Problem"]

VENSIM_SUFFIXES = (".mdl", ".xmile", ".xml", ".stmx")


def read_model(path: str | Path) -> Model:
    """Read a model file (.toml, or Vensim/XMILE through PySD) without compiling it."""
    from engine.parse.model_file import load_model_file, model_from_dict

    path = Path(path)
    if path.suffix.lower() in VENSIM_SUFFIXES:
        try:
            from engine.io.import_cache import import_cached
        except ImportError as exc:  # the optional importer is missing
            raise ModelError(Problem(str(path), None, f"Vensim/XMILE import is not available: {exc}")) from None
        # a second read of the same file (same bytes, same importer) comes from the disk cache
        return model_from_dict(import_cached(path), str(path))
    if path.suffix.lower() != ".toml":
        raise ModelError(Problem(str(path), None, f"unknown model file type {path.suffix!r}",
                                 "use .toml, .mdl or .xmile"))
    return load_model_file(path)


def compile_model(model: Model, check_units: bool = True, backend: str | None = None):
    """Resolve, check and compile a Model; returns a CompiledModel ready to run.

    backend: "numpy" (the reference), "jax", "numba" or "c" (compiled); None: $LXSD_BACKEND, else "c" with a
        C compiler, numpy without (engine.backends.default_backend says why)."""
    from engine.backends import check_backend, explicit
    from engine.compile.model_code import ModelCode
    from engine.resolve.resolver import resolve
    from engine.simulation import CompiledModel

    from engine.limits import check_dimensions

    check_dimensions(model.dimensions, model.file)   # before the compile time that grows with their size
    problems: list[Problem] = []
    rvars = None
    try:
        rvars = resolve(model)
    except ModelError as exc:
        problems += exc.problems
    if check_units:
        from engine.resolve.units import check_units as _check

        try:
            _check(model, rvars)
        except ModelError as exc:  # listed with the other problems, not instead of them
            problems += exc.problems
    if problems or rvars is None:
        raise ModelError(problems)
    return CompiledModel(model, rvars, ModelCode(model, rvars), check_backend(backend), explicit(backend))


def load_model(path: str | Path, check_units: bool | None = None, backend: str | None = None):
    """Read and compile a model file; raises ModelError naming the file and variable.

    backend: "numpy", "jax", "numba" or "c"; None: the default (c with a C compiler, else numpy; see
    engine.backends).

    Units are checked for our own .toml models; imported Vensim/XMILE models are run
    as their authors wrote them (Vensim checks their units itself).
    """
    model = read_model(path)
    if check_units is None:
        check_units = Path(path).suffix.lower() == ".toml"
    return compile_model(model, check_units, backend)
