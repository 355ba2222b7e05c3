"""Test-session settings.

The unit tests check the numpy backend, the reference (issue 12): several compare two code paths
bit for bit, and XLA would compile every small test model (seconds each). So the session runs on
numpy unless LXSD_BACKEND is set: ``LXSD_BACKEND=jax pytest`` runs the whole suite on the compiled
backend. tests/test_backend*.py choose their backends explicitly, and test the default themselves.
"""
from __future__ import annotations

import os

os.environ.setdefault("LXSD_BACKEND", "numpy")
# Imported Vensim/XMILE models are cached on disk (engine.io.import_cache); the session imports afresh so that
# no test reads another's translation or writes to the user's cache. tests/test_import_cache.py turns it on.
os.environ.setdefault("LXSD_IMPORT_CACHE", "0")
