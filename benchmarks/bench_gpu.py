"""The compiled (JAX) backend on a GPU (issue 12: "where a GPU is present the JAX backend runs there
unchanged"): equality with the numpy backend and run times, on whatever GPU jax sees.

    python benchmarks/bench_gpu.py [--out FILE.json] [--models reference,linxiang] [--sizes 1,1024,8192,100000]

Not part of ``make bench`` (the machines that run it have no GPU); run it where ``jax.devices("gpu")``
is not empty. For each model and batch size: the first run on the GPU (trace + XLA compile + run), the
median of three further runs, and the largest relative difference from the numpy backend (for batches of
up to 8 192 runs). The batch varies the model's first scalar constant with a range (as bench_backend.py).
Prints one line per case and writes every figure to the JSON file.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = {"reference": ROOT / "benchmarks" / "regional_economy.toml", "linxiang": ROOT / "model" / "linxiang.toml"}


def _plan(path: Path) -> tuple[str | None, float, float, list[str]]:
    """The constant to vary (the first scalar one with a range) and 10 variables to save."""
    import tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for name, spec in (data.get("constants") or {}).items():
        rng = spec.get("range")
        if not spec.get("dims") and isinstance(rng, list) and len(rng) == 2 and rng[0] < rng[1]:
            varied, lo, hi = name, float(rng[0]), float(rng[1])
            break
    else:
        varied, lo, hi = None, 0.0, 0.0
    names = (list(data.get("stocks") or {}) + list(data.get("auxiliaries") or {}))[:10]
    return varied, lo, hi, names


def _max_rel(a, b) -> float:
    import numpy as np

    worst = 0.0
    for v in a.variables:
        x, y = a[v], b[v]
        if x.size:
            worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-12))))
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="")
    ap.add_argument("--models", default="reference,linxiang")
    ap.add_argument("--sizes", default="1,1024,8192,100000")
    ap.add_argument("--platform", default="gpu", help="gpu, or cpu to try the script where there is no GPU")
    args = ap.parse_args(argv)

    import jax
    import numpy as np

    from engine import load_model

    try:
        gpus = jax.devices(args.platform)
    except RuntimeError:
        gpus = []
    if not gpus:
        print("no GPU visible to jax (jax.devices('gpu') is empty): nothing to measure", file=sys.stderr)
        return 2
    info = {"jax": jax.__version__, "device": str(gpus[0]), "device_kind": gpus[0].device_kind,
            "default_backend": jax.default_backend(), "cpus": os.cpu_count()}
    print(json.dumps(info), flush=True)
    rows = []
    for key in args.models.split(","):
        path = MODELS[key]
        varied, lo, hi, variables = _plan(path)
        mn = load_model(path, backend="numpy")
        with jax.default_device(gpus[0]):
            mj = load_model(path, backend="jax")
        for n in (int(s) for s in args.sizes.split(",")):
            params = {varied: np.linspace(lo, hi, n)} if varied and n > 1 else {}
            row: dict = {"model": key, "n": n}
            try:
                t0 = time.perf_counter()
                with jax.default_device(gpus[0]):
                    rj = mj.run(params=params, n=n, variables=variables)
                row["first_s"] = time.perf_counter() - t0
                row["ran_on"] = rj.backend
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    with jax.default_device(gpus[0]):
                        rj = mj.run(params=params, n=n, variables=variables)
                    times.append(time.perf_counter() - t0)
                row["median_s"] = statistics.median(times)
                if n <= 8192:
                    t0 = time.perf_counter()
                    rn = mn.run(params=params, n=n, variables=variables)
                    row["numpy_s"] = time.perf_counter() - t0
                    row["max_rel_diff"] = _max_rel(rn, rj)
            except Exception as exc:  # noqa: BLE001 - recorded, the next case goes on
                row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"info": info, "rows": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
