"""lxsd convert / export / conformance from the command line, bad input included."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).parent / "data" / "bad_models"


def lxsd(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.iterdir()))
@pytest.mark.parametrize("command", ["convert", "run"])
def test_bad_model_clear_error(name, command, tmp_path):
    out = tmp_path / ("o.toml" if command == "convert" else "o.csv")
    r = lxsd(command, BAD / name, "--out", out, timeout=90)   # a hang fails here
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert name in r.stderr
    assert not out.exists()


def test_convert_then_run_and_export(tmp_path):
    from tests.test_io_import import GOOD_MDL
    src = tmp_path / "small.mdl"
    src.write_text(GOOD_MDL, encoding="utf-8")
    toml = tmp_path / "small.toml"
    r = lxsd("convert", src, "--out", toml)
    assert r.returncode == 0, r.stderr
    d = tomllib.loads(toml.read_text(encoding="utf-8"))
    assert "stock" in d["stocks"]
    for fmt in ("mdl", "xmile"):
        out = tmp_path / f"back.{fmt}"
        r = lxsd("export", toml, "--to", fmt, "--out", out)
        assert r.returncode == 0, r.stderr
        assert out.read_text(encoding="utf-8").strip()


def test_export_rejects_missing_model(tmp_path):
    r = lxsd("export", tmp_path / "nope.toml", "--to", "mdl", "--out", tmp_path / "x.mdl")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "nope.toml" in r.stderr


def test_conformance_on_missing_folder(tmp_path):
    r = lxsd("conformance", tmp_path / "nowhere")
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_run_seed_chooses_the_random_stream(tmp_path):
    model = tmp_path / "noise.mdl"
    model.write_text("{UTF-8}\nnoise = RANDOM NORMAL(-6, 6, 0, 1, 0)\n\t~\tx\n\t~\t|\n\n"
                     "FINAL TIME = 20\n\t~\tMonth\n\t~\t|\n\nINITIAL TIME = 0\n\t~\tMonth\n\t~\t|\n\n"
                     "SAVEPER = TIME STEP\n\t~\tMonth\n\t~\t|\n\nTIME STEP = 1\n\t~\tMonth\n\t~\t|\n",
                     encoding="utf-8")
    outs = []
    for i, seed in enumerate((7, 7, 8)):
        out = tmp_path / f"o{i}.csv"
        r = lxsd("run", model, "--seed", seed, "--out", out)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_text(encoding="utf-8"))
    assert outs[0] == outs[1] and outs[0] != outs[2]


def test_empty_xmile_is_an_error_not_an_empty_model(tmp_path):
    model = tmp_path / "empty.xmile"
    model.write_text('<xmile xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0" version="1.0"><header/>'
                     "<sim_specs><start>0</start><stop>1</stop><dt>1</dt></sim_specs></xmile>", encoding="utf-8")
    r = lxsd("check", model)
    assert r.returncode != 0 and "no <model>" in r.stdout + r.stderr
    assert "OK" not in r.stdout
