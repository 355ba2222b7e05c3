"""Reading a .mdl/.xmile file into PySD's abstract model: file checks, the text rewrites
(engine/io/mdl_text.py, engine/io/xmile_text.py), a time limit on PySD's parser, and one clear error
for every failure.  Split out of engine/io/pysd_import.py."""
from __future__ import annotations

import re
import signal
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from engine.errors import ModelError, Problem

from . import IMPORT_SUFFIXES

PARSE_TIMEOUT_S = 120


def _error(path, message, variable=None, hint=None) -> ModelError:
    if Problem is not None:
        return ModelError([Problem(str(path), variable, message, hint)])
    return ModelError(f"{path}: {variable + ': ' if variable else ''}{message}")


@contextmanager
def _time_limit(seconds: int, path):
    """Bound PySD's parser in CPU time (main thread only; elsewhere no limit). CPU time, not wall time:
    a parse that loops is stopped all the same, and a large model (C-LEARN: about 20 s of CPU) is not
    stopped because the machine is busy with other work."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGVTALRM"):
        yield
        return

    def handler(signum, frame):
        raise TimeoutError

    old = signal.signal(signal.SIGVTALRM, handler)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    except TimeoutError:
        raise _error(path, f"parsing used more than {seconds} s of CPU time; "
                           "the file is probably not a valid model") from None
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, old)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise _error(path, "file not found")
    if not path.is_file():
        raise _error(path, "not a file")
    if path.suffix.lower() not in IMPORT_SUFFIXES:
        raise _error(path, f"unknown model file type '{path.suffix}'",
                     hint="use .mdl (Vensim) or .xmile/.xml/.stmx (XMILE)")
    data = path.read_bytes()
    if not data.strip():
        raise _error(path, "the file is empty")
    head = data[:65536]
    if b"\x00" in head:
        raise _error(path, "this is a binary file, not a text model file",
                     hint=("a Vensim model must be saved as text (.mdl), not .vmf/.vpm"
                           if path.suffix.lower() == ".mdl" else "XMILE is an XML text file"))
    text = head.decode("utf-8", errors="replace")
    bad = sum(1 for c in text if c == "\ufffd" or (ord(c) < 32 and c not in "\r\n\t\f\v"))
    if bad > max(8, len(text) // 50):
        try:
            head.decode("latin-1")
            # latin-1 decodes anything; only control characters count now
            ctrl = sum(1 for b in head if b < 32 and b not in b"\r\n\t\f\v")
        except Exception:  # pragma: no cover
            ctrl = bad
        if ctrl > max(8, len(head) // 50) or text.count("\ufffd") > len(text) // 10:
            raise _error(path, "the file does not look like a text model (binary data)")
    if path.suffix.lower() == ".mdl":
        body = data.decode("utf-8", errors="replace")
        if "~" not in body and "\\\\\\---///" not in body and "=" not in body:
            raise _error(path, "no Vensim equations found (expected 'name = expression ~ units ~ doc |')")


def _parse_error_message(exc: Exception) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    text = re.sub(r"\s+", " ", text)
    if len(text) > 600:
        text = text[:600] + " ..."
    return f"{name}: {text}" if text else name


def parse_abstract_model(path: str | Path):
    """PySD's abstract model of a Vensim or XMILE file; ModelError on any failure."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with _time_limit(PARSE_TIMEOUT_S, path):
                if suffix == ".mdl":
                    from pysd.translators.vensim.vensim_file import VensimFile

                    from .mdl_text import preprocess
                    vf = VensimFile(path)
                    vf.model_text = preprocess(vf._read(None))   # what PySD's grammar lacks
                    vf._split_sketch()
                    vf.parse()
                    return vf.get_abstract_model()
                import tempfile

                from pysd.translators.xmile.xmile_file import XmileFile

                from .xmile_text import XmileProblem, prepare
                try:
                    text = prepare(path.read_bytes())
                except XmileProblem as xp:
                    raise _error(path, str(xp), hint=xp.hint or None) from None
                with tempfile.TemporaryDirectory() as tmp:
                    copy = Path(tmp) / path.name
                    copy.write_bytes(text)
                    xf = XmileFile(copy)
                    xf.parse()
                    return xf.get_abstract_model()
        except ModelError:
            raise
        except RecursionError:
            raise _error(path, "the expressions are nested too deeply to parse") from None
        except Exception as exc:  # noqa: BLE001 - every PySD failure becomes a clear error
            element = _failing_element(exc)
            message = _parse_error_message(exc)
            if element and "'???'" in message:
                raise _error(path, "the equation is '???': left undefined (the tool that wrote the file "
                             "could not translate it)", variable=element,
                             hint="define the equation (the .mdl this file came from may have it)") from None
            raise _error(path, "cannot parse the equation: " + message if element
                         else "cannot parse the model: " + message, variable=element,
                         hint="check the equation near the position named above "
                              "(unbalanced parentheses, unknown function or macro, truncated file)") from None


def _failing_element(exc: BaseException) -> str | None:
    """Name of the model element PySD's parser was reading when it failed (from its frames)."""
    name = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.endswith(("vensim_element.py", "xmile_element.py")):
            candidate = getattr(frame.f_locals.get("self"), "name", None)
            if isinstance(candidate, str) and candidate:
                name = candidate
        tb = tb.tb_next
    return name
