"""The import cache (engine.io.import_cache): a second read of the same .mdl comes from disk, equal to a fresh
import; an edited file, a damaged cache file and models that read other files are imported afresh."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import engine
from engine.io import import_cache, pysd_import
from engine.parse.model_file import model_from_dict
from tests.test_io_import import GOOD_MDL


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """The cache on in a temporary folder; counts the real imports."""
    monkeypatch.setenv("LXSD_IMPORT_CACHE", "1")
    monkeypatch.setenv("LXSD_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    real = pysd_import.import_model

    def spy(path, data_files=()):
        calls.append(str(path))
        return real(path, data_files)

    monkeypatch.setattr(pysd_import, "import_model", spy)
    return calls


def _mdl(tmp_path, text=GOOD_MDL, name="m.mdl"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_second_read_comes_from_the_cache_and_equals_a_fresh_import(counted, tmp_path):
    p = _mdl(tmp_path)
    first = engine.read_model(p)
    second = engine.read_model(p)
    assert len(counted) == 1
    assert second == first == model_from_dict(pysd_import.import_model(p), str(p))
    assert len(list((tmp_path / "cache" / "import").glob("*.json"))) == 1
    # and it runs the same
    a, b = (engine.compile_model(m, check_units=False).run() for m in (first, second))
    np.testing.assert_array_equal(a["stock"], b["stock"])


def test_an_edited_file_is_imported_again(counted, tmp_path):
    p = _mdl(tmp_path)
    engine.read_model(p)
    p.write_text(GOOD_MDL.replace("\t0.1\n", "\t0.2\n"), encoding="utf-8")
    m = engine.read_model(p)
    assert len(counted) == 2
    assert m.variables["growth_rate"].value == pytest.approx(0.2)


def test_a_damaged_cache_file_is_ignored_and_rewritten(counted, tmp_path):
    p = _mdl(tmp_path)
    engine.read_model(p)
    (f,) = (tmp_path / "cache" / "import").glob("*.json")
    f.write_text('{"format": "lxsd-import-cache-1", "model": [', encoding="utf-8")
    m = engine.read_model(p)
    assert len(counted) == 2 and m.variables["growth_rate"].value == pytest.approx(0.1)
    engine.read_model(p)
    assert len(counted) == 2   # the rewritten file is read


def test_failed_imports_and_models_reading_other_files_are_not_cached(counted, tmp_path):
    bad = _mdl(tmp_path, GOOD_MDL.replace("Stock * growth rate", "Stock * no such thing"), "bad.mdl")
    for _ in range(2):
        with pytest.raises(engine.ModelError, match="bad.mdl"):
            engine.read_model(bad)
    assert len(counted) == 2
    ext = _mdl(tmp_path, GOOD_MDL.replace("\t0.1\n", "\tGET XLS CONSTANTS('d.xlsx', 'S', 'B2')\n"), "ext.mdl")
    for _ in range(2):
        # the data file does not exist; what matters is that the model was imported each time
        with contextlib.suppress(engine.ModelError):
            engine.read_model(ext)
    assert len(counted) == 4
    assert not list((tmp_path / "cache" / "import").glob("*.json"))


def test_off_switch(counted, tmp_path, monkeypatch):
    monkeypatch.setenv("LXSD_IMPORT_CACHE", "0")
    p = _mdl(tmp_path)
    engine.read_model(p)
    engine.read_model(p)
    assert len(counted) == 2


def test_key_covers_the_bytes():
    assert import_cache.cache_key(b"a") != import_cache.cache_key(b"b")
    assert import_cache.cache_key(b"a") == import_cache.cache_key(b"a")
