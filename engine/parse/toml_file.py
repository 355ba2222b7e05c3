"""Read a TOML file given by a user, with errors that name the file (never a traceback)."""
from __future__ import annotations

import tomllib
from pathlib import Path

from engine.errors import ModelError, Problem


def read_toml(path: str | Path, what: str = "file") -> dict:
    """The parsed TOML of ``path``; ModelError naming the file if it is missing, unreadable or malformed.

    ``what`` names the file's role in the message ("scenario file", "mapping file", ...).
    """
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a leading BOM (Windows editors) is accepted
    except FileNotFoundError:
        raise ModelError(Problem(str(path), None, f"{what} not found")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(Problem(str(path), None, f"cannot read the {what}: {exc}")) from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(Problem(str(path), None, f"TOML syntax error: {exc}")) from None
