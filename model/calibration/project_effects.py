"""The 2030 effects of the project scenarios against actual_trend, with the range the uncertain constants give.

Each scenario and its base are run on the same draws of every constant whose role is "uncertain" (common random
numbers), and the difference is taken draw by draw, so the range is that of the effect, not of the levels.
Draws are uniform over the constants' declared ranges (the prior); pass --posterior to draw from a posterior file
once the engine ships one. Run from the repository root:

    .venv/bin/python model/calibration/project_effects.py [--samples 1000] [--seed 20261129]

Prints a Markdown table (docs/model.md, Project effects).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from engine import load_model  # noqa: E402
from engine.scenarios import load_scenario  # noqa: E402

SCENARIOS = ["ethylene_cancelled", "ethylene_delay_2y", "rongyue_fast"]
OUTPUTS = {"gdp_real": "GDP (2020 prices)", "budget_revenue": "budget revenue (current prices)",
           "co2_emissions": "CO2"}
YEAR = 2030


def effects(samples: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Relative effect (scenario / base - 1) in YEAR per scenario and output, one value per draw."""
    m = load_model(ROOT / "model" / "linxiang.toml")
    rng = np.random.default_rng(seed)
    draws = {n: rng.uniform(*m.model.variables[n].range, size=(samples, *m.rvars[n].sizes))
             for n in m.constants_with_role("uncertain")}
    base = load_scenario(ROOT / "scenarios" / "actual_trend.toml", m).overrides
    out: dict[str, dict[str, np.ndarray]] = {}
    ref = m.run(params={**{k: v for k, v in base.items() if k not in draws}, **draws}, variables=list(OUTPUTS))
    i = int(np.argmin(np.abs(np.asarray(ref.times) - YEAR)))
    for s in SCENARIOS:
        ov = load_scenario(ROOT / "scenarios" / f"{s}.toml", m).overrides
        res = m.run(params={**{k: v for k, v in ov.items() if k not in draws}, **draws}, variables=list(OUTPUTS))
        out[s] = {o: res[o][:, i] / ref[o][:, i] - 1 for o in OUTPUTS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    eff = effects(args.samples, args.seed)
    print(f"| scenario | " + " | ".join(f"{v}, {YEAR}" for v in OUTPUTS.values()) + " |")
    print("|---|" + "---:|" * len(OUTPUTS))
    for s, d in eff.items():
        cells = []
        for o in OUTPUTS:
            q5, q50, q95 = np.percentile(d[o] * 100, [5, 50, 95])
            cells.append(f"{q50:+.1f}% [{q5:+.1f}, {q95:+.1f}]")
        print(f"| {s} | " + " | ".join(cells) + " |")
    print(f"\n{args.samples} draws of every uncertain constant (uniform over its range), seed {args.seed}; "
          "median [5th, 95th percentile] of the effect against actual_trend.")


if __name__ == "__main__":
    main()
