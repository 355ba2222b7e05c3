"""A disk cache of imported Vensim/XMILE models, so that a second process starts fast.

Translating a large .mdl through PySD's parser takes seconds (Earth4All: 5-8 s), while the model dict it
produces (TOML shape) reads back from JSON in milliseconds. The cache file is
``$LXSD_CACHE_DIR/import/<hash>.json`` (default ``~/.cache/linxiang-sd/import``); the hash covers the model
file's bytes, the importer's own source (every module of engine/io) and PySD's version, so an edited model or a
changed importer never reads a stale translation.

Not cached: models that read other files while being imported (GET XLS/DIRECT/DATA/123/VDF, or data files
given by the caller), since the hash does not cover those files. JSON, not pickle: reading a cache file runs no
code. A damaged cache file is ignored and rewritten; files are written atomically.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from engine import disk_cache

FORMAT = b"lxsd-import-cache-1"
# constructs that read another file at import time (the cache key would not cover it)
_EXTERNAL = re.compile(rb"GET[ _]?(XLS|DIRECT|DATA|123|VDF)|TABBED[ _]ARRAY", re.IGNORECASE)


def cache_dir() -> Path:
    """Where imported models are kept: $LXSD_CACHE_DIR/import."""
    return disk_cache.cache_dir("import")


@functools.lru_cache(maxsize=1)
def _importer_hash() -> str:
    """The importer's own source and PySD's version, hashed once per process."""
    h = hashlib.sha256(FORMAT)
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    try:
        from importlib.metadata import version

        h.update(version("pysd").encode())
    except Exception:  # noqa: BLE001 - no PySD: the import itself will say so
        h.update(b"no-pysd")
    return h.hexdigest()


def cache_key(data: bytes) -> str:
    """The cache file's name for a model file's bytes (with the importer's hash)."""
    return hashlib.sha256(_importer_hash().encode() + data).hexdigest()[:32]


def import_cached(path: str | Path, data_files: tuple = ()) -> dict[str, Any]:
    """engine.io.pysd_import.import_model(path), read from the cache when this file was imported before.

    Raises what import_model raises (ModelError naming the file); failed imports are not cached."""
    from engine.io.pysd_import import import_model

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return import_model(path, data_files)    # its own error names the file
    if data_files or _EXTERNAL.search(data) or os.environ.get("LXSD_IMPORT_CACHE", "1") == "0":
        return import_model(path, data_files)
    target = cache_dir() / f"{cache_key(data)}.json"
    try:
        cached = json.loads(target.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("format") == FORMAT.decode() and isinstance(cached.get("model"),
                                                                                                  dict):
            return cached["model"]
    except (OSError, ValueError):
        pass   # absent or damaged: import again
    model = import_model(path, data_files)
    _write(target, {"format": FORMAT.decode(), "source": str(path), "model": model})
    return model


def _write(target: Path, payload: dict) -> None:
    """Write atomically; a cache that cannot be written (read-only home, full disk) is skipped silently."""
    try:
        text = json.dumps(payload, ensure_ascii=False)
    except (TypeError, ValueError):
        return   # something JSON cannot hold: leave this model uncached
    disk_cache.write_atomic(target, text.encode("utf-8"))
