"""The on-disk cache's folder and its atomic writes, shared by the compiled backends (JAX, numba, C) and the
importer's cache (engine.io.import_cache). What the folder may hold and why it is trusted: docs/security.md."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """``$LXSD_CACHE_DIR/<kind>`` (default ``~/.cache/linxiang-sd/<kind>``); not created here."""
    return Path(os.environ.get("LXSD_CACHE_DIR", Path.home() / ".cache" / "linxiang-sd")) / kind


def write_atomic(path: Path, data: bytes) -> bool:
    """Write a cache file through a temporary file and a rename, so a reader never sees half of it; False when
    the folder cannot be written (the caller goes on without the cache)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True
    except OSError:
        return False
