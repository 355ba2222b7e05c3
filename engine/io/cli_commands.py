"""``lxsd convert``, ``lxsd export`` and ``lxsd conformance`` (registered by engine/cli.py).

Each command function takes the argparse Namespace and returns an exit code; a user
error prints one clear message to stderr and returns non-zero, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.errors import EngineError


def _fail(msg: str, code: int = 2) -> int:
    print(f"lxsd: error: {msg}", file=sys.stderr)
    return code


def _guard(fn):
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except EngineError as exc:
            return _fail(str(exc), 1)
        except ValueError as exc:
            return _fail(str(exc), 1)
        except OSError as exc:
            return _fail(f"{exc.filename or ''}: {exc.strerror or exc}", 1)
        except KeyboardInterrupt:
            return _fail("interrupted", 130)
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _check_out(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{out}: folder {parent} does not exist")


@_guard
def cmd_convert(args: argparse.Namespace) -> int:
    """Vensim/XMILE -> our TOML."""
    from .pysd_import import import_model, to_toml
    src, out = Path(args.model), Path(args.out)
    if out.suffix.lower() != ".toml":
        return _fail(f"{out}: --out must be a .toml file")
    _check_out(out)
    d = import_model(src)
    text = to_toml(d, header=f"Converted from {src.name} by `lxsd convert` (Vensim/XMILE names in label_en).")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    n = sum(len(d.get(s) or {}) for s in ("constants", "stocks", "flows", "auxiliaries", "lookups", "data"))
    print(f"wrote {out} ({n} variables)")
    return 0


@_guard
def cmd_export(args: argparse.Namespace) -> int:
    """Our model (or any importable model) -> Vensim .mdl or XMILE."""
    from .export_mdl import export_mdl, load_dict
    from .export_xmile import export_xmile
    out = Path(args.out)
    _check_out(out)
    d = load_dict(Path(args.model))
    text = export_mdl(d) if args.to == "mdl" else export_xmile(d, source=str(args.model))
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


@_guard
def cmd_conformance(args: argparse.Namespace) -> int:
    """Run an SDXorg test-models tree against its canonical outputs."""
    from .conformance import find_models, report_markdown, run_conformance, suite_root, summary_line
    root = Path(args.dir)
    if not root.is_dir():
        return _fail(f"{root}: no such folder (clone SDXorg/test-models and pass its tests/ folder)")
    if not find_models(root):
        return _fail(f"{root}: no .mdl/.xmile/.stmx model with an output.csv/output.tab found")
    if args.report:
        _check_out(Path(args.report))
    width = 60

    def progress(row):
        print(f"{row.model[:width]:<{width}} {row.status:<5} {row.seconds:6.2f}s  {row.reason[:100]}",
              flush=True)
    print(f"{'model':<{width}} {'status':<5} {'time':>7}  reason")
    rows = run_conformance(root, timeout=args.timeout, progress=progress)
    if args.report:
        Path(args.report).write_text(report_markdown(rows, suite_root(root)), encoding="utf-8")
        print(f"report written to {args.report}")
    print(summary_line(rows))
    passed = sum(r.passed for r in rows)
    if args.min_pass is not None and passed < args.min_pass:
        return _fail(f"only {passed} models passed, fewer than --min-pass {args.min_pass}", 1)
    return 0


def register(subparsers) -> None:
    """Add convert, export and conformance to lxsd's subcommands."""
    p = subparsers.add_parser("convert", help="convert a Vensim .mdl or XMILE model to our TOML format",
                              description="Read a Vensim (.mdl) or XMILE (.xmile/.xml/.stmx) model "
                                          "through PySD's translator and write it as a .toml model.")
    p.add_argument("model", help="the .mdl / .xmile file")
    p.add_argument("--out", required=True, help="the .toml file to write")
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser("export", help="write a model as Vensim .mdl or XMILE",
                              description="Write a model (.toml, or any importable model) as a Vensim "
                                          ".mdl file or as XMILE.")
    p.add_argument("model", help="the model (.toml, .mdl or .xmile)")
    p.add_argument("--to", required=True, choices=["mdl", "xmile"], help="output format")
    p.add_argument("--out", required=True, help="the file to write")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("conformance", help="run the SDXorg test-models suite against its canonical outputs",
                              description="Run every .mdl/.xmile/.stmx model of an SDXorg test-models tree on our "
                                          "engine and compare it with its output.csv/output.tab (rtol 0.05). "
                                          "Get the suite with: git clone https://github.com/SDXorg/test-models")
    p.add_argument("dir", help="the test-models folder (or its tests/ folder)")
    p.add_argument("--report", help="also write the table to this Markdown file")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per model (default 120)")
    p.add_argument("--min-pass", type=int, default=None,
                   help="exit non-zero when fewer models than this pass")
    p.set_defaults(func=cmd_conformance)
