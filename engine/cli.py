"""``lxsd``: run, check and describe models from the command line.

User mistakes (a bad model, scenario, option or value) print a message naming the
file, the variable and the fix, and exit with status 2 (1 for a failed run); they
never print a Python traceback.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import re
import sys
from pathlib import Path

import numpy as np

from engine.errors import EngineError, ModelError


def _parse_number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EngineError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise EngineError(f"{what}: {text!r} is not a finite number")
    return value


def _finite_float(text: str) -> float:
    """argparse type for time options: a finite number (nan, inf are refused with the option's name)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def check_out_path(out: Path, suffixes: tuple[str, ...] | None = None) -> Path:
    """An --out file that can be written: not a folder, its folder exists and is writable; else EngineError."""
    if out.is_dir():
        raise EngineError(f"{out}: --out is an existing folder; give a file name inside it, e.g. {out / 'out'}"
                          + (suffixes[0] if suffixes else ".md"))
    if suffixes and out.suffix.lower() not in suffixes:
        raise EngineError(f"{out}: --out must end in {' or '.join(suffixes)}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise EngineError(f"{out}: --out's folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise EngineError(f"{out}: --out cannot be written here (permission denied); choose another path")
    return out


def _parse_set(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise EngineError(f"--set {item!r}: expected NAME=VALUE")
        name, value = item.split("=", 1)
        out[name.strip()] = _parse_number(value.strip(), f"--set {name.strip()}")
    return out


def _parse_sweep(items: list[str]) -> list[tuple[str, np.ndarray]]:
    sweeps = []
    for item in items or []:
        try:
            name, spec = item.split("=", 1)
            lo, hi, n = spec.split(":")
            count = int(n)
        except ValueError:
            raise EngineError(f"--sweep {item!r}: expected NAME=LO:HI:N, e.g. savings_rate=0.2:0.4:5") from None
        if count < 1:
            raise EngineError(f"--sweep {item!r}: N must be at least 1")
        from engine.limits import check_runs
        check_runs(count, f"--sweep {name.strip()} values")
        sweeps.append((name.strip(), np.linspace(_parse_number(lo, "--sweep"), _parse_number(hi, "--sweep"), count)))
    return sweeps


_ELEMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([^\]]+)\]$")


def _split_element(name: str) -> tuple[str, str | None]:
    """'value_added[heavy]' -> ('value_added', 'heavy'); 'gdp' -> ('gdp', None)."""
    m = _ELEMENT.match(name.replace(" ", ""))
    return (m.group(1), m.group(2)) if m else (name, None)


def _identifiers(model, names: list[str]) -> list[str]:
    """Names as typed (an identifier, or an imported model's Vensim name such as 'growth rate',
    with an optional [element]) -> identifier[element]."""
    out = []
    for name in names:
        m = re.fullmatch(r"\s*([^\[\]]+?)\s*(\[[^\]]+\])?\s*", name)
        if not m:
            out.append(name)
            continue
        out.append(model.identifier(m.group(1)) + (m.group(2) or "").replace(" ", ""))
    return out


def _check_range(model, name: str, value: float, allow_outside: bool, what: str) -> None:
    var = model.model.variables[name]
    if var.range and not allow_outside and not (var.range[0] <= value <= var.range[1]):
        raise EngineError(f"{what}: {name} = {value:g} is outside its range [{var.range[0]:g}, {var.range[1]:g}] "
                          f"(add --allow-outside-range to run it anyway)")


def _with_element(model, name: str, element: str, value: float, current: object) -> np.ndarray:
    """A subscripted constant's values (shape of its dims) with one element replaced."""
    rv = model.rvars[name]
    arr = np.array(model._value_array(name, current, None)[..., 0] if current is not None
                   else model._defaults[name][..., 0], dtype=float)
    keys = [",".join(e) for e in model.elements(name)]
    if element not in keys:
        raise EngineError(f"{name}[{element}]: unknown element; elements: {', '.join(keys)}")
    arr.reshape(-1)[keys.index(element)] = value
    return arr.reshape(rv.sizes)


def build_runs(model, scenario_files: list[str], sets: dict[str, float],
               sweeps: list[tuple[str, np.ndarray]], allow_outside: bool = False) -> dict[str, dict]:
    """Scenario name -> overrides: each scenario file, crossed with every sweep value.

    ``--set``/``--sweep`` names may pick one element of a subscripted constant: ``name[element]``.
    Values outside a constant's declared range are refused unless ``allow_outside``.
    """
    from engine.scenarios import load_scenario

    base: dict[str, dict] = {}
    for f in scenario_files:
        sc = load_scenario(f, model)
        if sc.name in base:
            raise EngineError(f"{f}: scenario name {sc.name!r} is given twice")
        base[sc.name] = dict(sc.overrides)
    if not base:
        base = {"base": {}}
    sets = dict(zip(_identifiers(model, list(sets)), sets.values(), strict=True))
    sweeps = [(n, v) for n, (_, v) in zip(_identifiers(model, [s[0] for s in sweeps]), sweeps, strict=True)]
    for name in list(sets) + [s[0] for s in sweeps]:
        plain, element = _split_element(name)
        model._check_settable(plain)
        if element is not None and not model.rvars[plain].dims:
            raise EngineError(f"{name}: {plain} has no dimensions; write {plain}=VALUE")
    for name, value in sets.items():
        _check_range(model, _split_element(name)[0], value, allow_outside, "--set")
    for name, values in sweeps:
        for v in (values.min(), values.max()):
            _check_range(model, _split_element(name)[0], float(v), allow_outside, "--sweep")

    def apply(overrides: dict, name: str, value: float) -> dict:
        plain, element = _split_element(name)
        out = dict(overrides)
        out[plain] = value if element is None else _with_element(model, plain, element, value, out.get(plain))
        return out

    from engine.limits import check_runs
    check_runs(len(base) * math.prod(len(v) for _, v in sweeps), "runs (scenarios x sweep values)")
    runs = {}
    for k, v in base.items():
        for name, value in sets.items():
            v = apply(v, name, value)
        runs[k] = v
    for name, values in sweeps:
        runs = {f"{k}|{name}={v:g}" if len(runs) > 1 or k != "base" else f"{name}={v:g}": apply(o, name, float(v))
                for k, o in runs.items() for v in values}
    return runs


def cmd_run(args: argparse.Namespace) -> int:
    from engine import load_model
    from engine.results import write_frame_atomic

    if args.out:
        check_out_path(Path(args.out), (".csv", ".parquet"))
    model = load_model(args.model, check_units=False if args.no_units else None, backend=args.backend)
    runs = build_runs(model, args.scenario, _parse_set(args.set), _parse_sweep(args.sweep), args.allow_outside_range)
    wanted = _identifiers(model, [v.strip() for v in args.vars.split(",") if v.strip()]) if args.vars else None
    variables = list(dict.fromkeys(_split_element(v)[0] for v in wanted)) if wanted else None
    res = model.run(scenarios=runs, method=args.method, dt=args.dt, start=args.start, stop=args.stop,
                    saveper=args.saveper, variables=variables, seed=args.seed)
    df = res.to_dataframe()
    if wanted and any(_split_element(v)[1] is not None for v in wanted):
        cols = []
        for v in wanted:
            plain, element = _split_element(v)
            if element is None:
                cols += [c for c in df.columns if c == plain or c.startswith(plain + "[")]
            elif f"{plain}[{element}]" in df.columns:
                cols.append(f"{plain}[{element}]")
            else:
                keys = [",".join(e) for e in model.elements(plain)]
                raise EngineError(f"--vars {v}: unknown element; elements of {plain}: {', '.join(keys)}")
        df = df[cols]
    if args.names == "original":
        df = df.rename(columns=lambda c: original_column(model.model, c))
    if args.out:
        out = check_out_path(Path(args.out), (".csv", ".parquet"))
        write_frame_atomic(df.reset_index(), out)
        print(f"wrote {len(res.scenarios)} scenario(s) x {len(res.times)} times to {args.out}", file=sys.stderr)
    else:
        df.reset_index().to_csv(sys.stdout, index=False)
    return 0


def original_column(model, column: str) -> str:
    """'stock[entry_1]' -> 'Stock[Entry 1]': the names an imported model's file uses (Vensim's
    and PySD's column format); names without an original stay as they are."""
    name, element = _split_element(column)
    if name in model.time.dynamic.values():   # FINAL_TIME -> FINAL TIME, as Vensim writes it
        return name.replace("_", " ")
    head = model.original_names.get(name, name)
    if element is None:
        return head
    elems = [model.original_element_names.get(e, e) for e in element.split(",")]
    return f"{head}[{','.join(elems)}]"


def cmd_check(args: argparse.Namespace) -> int:
    from engine import compile_model, read_model

    model = read_model(args.model)
    compiled = compile_model(model, check_units=not args.no_units)
    ts = compiled.model.time
    declared = [v for v in model.variables.values() if v.name not in ts.dynamic.values()]  # not [time]'s
    n = {k: sum(1 for v in declared if v.kind == k)
         for k in ("stock", "flow", "auxiliary", "constant", "lookup", "data")}
    internal = sum(1 for v in compiled.rvars.values() if v.internal and v.kind == "stock")
    print(f"{args.model}: OK: {len(declared)} variables ({', '.join(f'{v} {k}' for k, v in n.items() if v)}), "
          f"{internal} internal delay/smooth stocks, {len(model.dimensions)} dimension(s), "
          f"time {ts.start:g}-{ts.stop:g} step {ts.dt:g} ({ts.unit})"
          + (f"; values at the start, {', '.join(ts.dynamic.values())} changing during the run" if ts.dynamic else ""))
    if args.scenario:
        from engine.errors import ModelError as _ME
        from engine.scenarios import load_scenario

        problems = []
        for f in args.scenario:
            try:
                load_scenario(f, compiled)
            except _ME as exc:
                problems += exc.problems
        if problems:
            raise _ME(problems)
        print(f"{len(args.scenario)} scenario file(s): OK")
    if args.dt_check:
        from engine.analysis.convergence import dt_convergence
        rows = dt_convergence(compiled)
        worst = max(rows, key=lambda r: r[1]) if rows else None
        for name, diff in rows:
            print(f"  dt check {name}: largest relative difference dt vs dt/2 = {diff:.2e}")
        if worst:
            print(f"dt check: worst {worst[0]} {worst[1]:.2e}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from engine import read_model

    model = read_model(args.model)
    lang = args.lang
    print(f"# {model.name}" + (f": {model.label_zh if lang == 'zh' else model.label_en}"
                               if (model.label_zh or model.label_en) else ""))
    ts = model.time
    shown = {f: (f"({ts.dynamic[f]} = {model.variables[ts.dynamic[f]].equations['']})" if f in ts.dynamic
                 else f"{getattr(ts, f):g}")
             for f in ("start", "stop", "dt", "saveper")}
    print(f"time {shown['start']} to {shown['stop']}, dt {shown['dt']}, saveper {shown['saveper']} ({ts.unit}); "
          f"method {ts.method}")
    from engine.backends import default_backend, describe
    print(f"backend {describe(default_backend())}")
    for d, els in model.dimensions.items():
        labelled = [f"{e} ({model.element_labels[e][lang]})" if lang in model.element_labels.get(e, {}) else e
                    for e in els]
        print(f"dimension {d}: {', '.join(labelled)}")
    for d, (parent, els) in model.subranges.items():
        print(f"subrange {d} of {parent}: {', '.join(els)}")
    for name, v in model.variables.items():
        if args.grep and args.grep.lower() not in " ".join(
                str(x) for x in (name, v.label_zh, v.label_en, v.doc) if x).lower():
            continue
        label = v.label_zh if lang == "zh" else v.label_en
        dims = f"[{','.join(v.dims)}]" if v.dims else ""
        print(f"\n{name}{dims}  ({v.kind}{', ' + v.unit if v.unit else ''})" + (f"  {label}" if label else ""))
        if v.kind == "constant":
            print(f"  = {v.value}" + (f"   range {list(v.range)}" if v.range else ""))
        elif v.kind == "stock":
            print(f"  = INTEG({' + '.join(v.inflows) or '0'}{''.join(' - ' + o for o in v.outflows)}, {v.initial})"
                  + ("   non-negative" if v.non_negative else ""))
        elif v.kind in ("flow", "auxiliary"):
            for sel, eq in v.equations.items():
                print(f"  {('[' + sel + '] ') if sel else ''}= {eq}")
        elif v.kind == "lookup":
            print(f"  x = {list(v.xs)}\n  y = {list(v.ys)}   ({v.extrapolation})")
        elif v.kind == "data":
            print(f"  series over {v.times[0]:g}-{v.times[-1]:g} ({len(v.times)} points, {v.interpolation})")
        if v.doc:
            print(f"  doc: {v.doc}")
        if v.source:
            print(f"  source: {v.source}")
    return 0


def cmd_doc(args: argparse.Namespace) -> int:
    """Write the generated parts of a model's documentation: loops, diagram, equations."""
    import shutil
    import subprocess

    from engine import read_model
    from engine.analysis.structure import equation_listing, feedback_loops, stock_flow_dot

    for opt in ("out", "svg"):
        if getattr(args, opt):
            check_out_path(Path(getattr(args, opt)))
    model = read_model(args.model)
    loops = feedback_loops(model)
    dot = stock_flow_dot(model, args.lang)
    parts = [f"### Feedback loops ({len(loops)} found from the equations)", "",
             "| # | polarity | loop |", "|---|---|---|"]
    for i, lp in enumerate(loops, 1):
        parts.append(f"| {i} | {lp.kind} | {' → '.join(lp.variables)} → {lp.variables[0]} |")
    parts += ["", "### Stock-flow diagram", ""]
    if args.svg:
        if shutil.which("dot") is None:
            raise EngineError("--svg needs Graphviz's `dot` (apt-get install graphviz)")
        svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True).stdout
        _write_atomic(Path(args.svg), svg)
        parts.append(f"![stock-flow diagram]({Path(args.svg).name})")
    else:
        parts += ["```dot", dot, "```"]
    parts += ["", "### Equations", "", equation_listing(model, args.lang), ""]
    block = "\n".join(parts)
    if not args.out:
        print(block)
        return 0
    out = Path(args.out)
    start, end = "<!-- generated:start -->", "<!-- generated:end -->"
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    if start in text and end in text:
        text = text[: text.index(start) + len(start)] + "\n" + block + "\n" + text[text.index(end):]
    else:
        text = text + ("\n" if text else "") + start + "\n" + block + "\n" + end + "\n"
    _write_atomic(out, text.encode("utf-8"))
    print(f"wrote the generated section of {out}", file=sys.stderr)
    return 0


def _write_atomic(path: Path, data: bytes) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lxsd", description="Linxiang SD: vectorised system-dynamics engine")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a model for one or more scenarios; CSV to stdout or --out")
    r.add_argument("model")
    r.add_argument("scenario", nargs="*", help="scenario files (.toml); each is one run of the batch")
    r.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="set a constant in every run (NAME[element] for one element)")
    r.add_argument("--sweep", action="append", metavar="NAME=LO:HI:N", help="N runs with NAME from LO to HI")
    r.add_argument("--method", choices=["euler", "rk2", "rk4", "adaptive"], default=None)
    r.add_argument("--backend", choices=["numpy", "jax", "numba", "c"], default=None,
                   help="numpy (the reference), jax, numba or c (compiled, cached on disk; c is the default where a "
                        "C compiler is found, numpy elsewhere)")
    r.add_argument("--dt", type=_finite_float)
    r.add_argument("--start", type=_finite_float)
    r.add_argument("--stop", type=_finite_float)
    r.add_argument("--saveper", type=_finite_float)
    r.add_argument("--seed", type=int, default=0,
                   help="seed of the RANDOM functions' streams (run i draws the same numbers in any batch size)")
    r.add_argument("--vars", help="comma-separated variables to save (default: all); name[element] for one column")
    r.add_argument("--out", help="FILE.csv or FILE.parquet")
    r.add_argument("--names", choices=("identifier", "original"), default="identifier",
                   help="column names: identifiers (default), or for an imported .mdl/.xmile the names as "
                        "written there (Vensim's and PySD's columns)")
    r.add_argument("--no-units", action="store_true", help="skip the unit check (e.g. a converted Vensim model)")
    r.add_argument("--allow-outside-range", action="store_true",
                   help="accept --set/--sweep values outside a constant's declared range")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check", help="parse, resolve, check units and loops; list every problem")
    c.add_argument("model")
    c.add_argument("scenario", nargs="*", help="scenario files to check against the model too")
    c.add_argument("--no-units", action="store_true", help="skip the unit check")
    c.add_argument("--dt-check", action="store_true", help="also compare a run at dt with one at dt/2")
    c.set_defaults(func=cmd_check)

    d = sub.add_parser("describe", help="each variable with its kind, units, labels and equation")
    d.add_argument("model")
    d.add_argument("--lang", choices=["zh", "en"], default="en")
    d.add_argument("--grep", help="only variables whose name, label or doc contains this text")
    d.set_defaults(func=cmd_describe)

    g = sub.add_parser("doc", help="generated documentation: feedback loops, stock-flow diagram, equations")
    g.add_argument("model")
    g.add_argument("--out", help="markdown file; its section between <!-- generated:start/end --> is replaced")
    g.add_argument("--svg", help="also render the diagram to this SVG file (needs Graphviz)")
    g.add_argument("--lang", choices=["zh", "en"], default="en")
    g.set_defaults(func=cmd_doc)

    for module in ("engine.io.cli_commands", "engine.analysis.cli_commands"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        mod.register(sub)
    for command in sub.choices.values():   # every command: the limits of engine.limits can be lifted
        if not any("--force" in a.option_strings for a in command._actions):
            command.add_argument("--force", action="store_true",
                                 help="run past the step, run-count, memory and size limits (docs/security.md)")
        if not any("--allow-data-outside" in a.option_strings for a in command._actions):
            command.add_argument("--allow-data-outside", action="store_true",
                                 help="let an imported .mdl's GET DIRECT/GET XLS read files outside its folder")
        if not any("--progress" in a.option_strings for a in command._actions):
            command.add_argument("--progress", action="store_true",
                                 help="show progress on stderr (default: on a terminal, for runs of a second or more)")
        if not any("--quiet" in a.option_strings for a in command._actions):
            command.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    name = "lxsd"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        name = f"lxsd {args.command}"
        from engine import limits

        limits.set_force(bool(getattr(args, "force", False)))
        if getattr(args, "allow_data_outside", False):
            os.environ["LXSD_ALLOW_DATA_OUTSIDE"] = "1"   # read by engine.io.pysd_import (and inherited by workers)
        return _dispatch(args)
    except KeyboardInterrupt:   # Ctrl-C: one line, never a traceback (the shell's convention: 128 + SIGINT)
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _check_counts(args: argparse.Namespace) -> None:
    """--samples/--restarts past the run limit are refused before anything is drawn (engine.limits)."""
    from engine.limits import check_runs

    for option in ("samples", "restarts"):
        value = getattr(args, option, None)
        if isinstance(value, int) and not isinstance(value, bool):
            check_runs(value, f"--{option}")


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; every error becomes one message (a traceback only with LXSD_DEBUG=1)."""
    try:
        _check_counts(args)
        from engine.cli_progress import shown

        if getattr(args, "own_progress", False):   # a command with its own progress bar (posterior)
            return int(args.func(args) or 0)
        with shown(args.command, bool(getattr(args, "progress", False)), bool(getattr(args, "quiet", False))):
            return int(args.func(args) or 0)
    except ModelError as exc:
        print(f"lxsd {args.command}: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except EngineError as exc:
        print(f"lxsd {args.command}: error: {exc}", file=sys.stderr)
        return 1 if exc.__class__.__name__ == "SimulationError" else 2
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except MemoryError:
        print(f"lxsd {args.command}: error: out of memory; save fewer variables (--vars), run fewer runs or "
              f"samples at a time, or write to --out in shards", file=sys.stderr)
        return 1
    except RecursionError:
        print(f"lxsd {args.command}: error: an equation or a chain of files is nested too deeply to process; "
              f"split long nested equations into several variables", file=sys.stderr)
        return 2
    except OSError as exc:   # a file the command writes or reads outside the engine's own checks
        name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"lxsd {args.command}: error: {name}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last guard: a bug, reported in one line, never a traceback
        if os.environ.get("LXSD_DEBUG"):
            raise
        print(f"lxsd {args.command}: internal error: {type(exc).__name__}: {exc} (this is a bug in lxsd; "
              f"LXSD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
