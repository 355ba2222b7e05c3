"""The 2030 effects of the project scenarios against actual_trend, with the range the uncertain constants give.

Each scenario and its base are run on the same draws of every constant whose role is "uncertain" (common random
numbers), and the difference is taken draw by draw, so the range is that of the effect, not of the levels.
The constants the shipped posterior holds (model/linxiang_posterior.nc) are drawn jointly from it, the other
uncertain constants uniformly over their ranges; --prior draws every one from its range. `lxsd ensemble ...
--diff scenarios/actual_trend.toml` gives the same differences in absolute terms. Run from the repository root:

    .venv/bin/python model/calibration/project_effects.py [--samples 1000] [--seed 20261129] [--prior]

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


def effects(samples: int, seed: int, prior: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Relative effect (scenario / base - 1) in YEAR per scenario and output, one value per draw."""
    from engine.analysis.ensemble import build_space, draw_joint
    from engine.analysis.posterior import default_posterior, read_posterior

    path = ROOT / "model" / "linxiang.toml"
    m = load_model(path)
    space = build_space(m)
    post_file = None if prior else default_posterior(path)
    X = draw_joint(space, samples, seed, posterior=read_posterior(post_file) if post_file else None)
    draws = space.to_params(X, {})
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
    ap.add_argument("--prior", action="store_true", help="draw every uncertain constant from its range")
    args = ap.parse_args()
    eff = effects(args.samples, args.seed, args.prior)
    print("| scenario | " + " | ".join(f"{v}, {YEAR}" for v in OUTPUTS.values()) + " |")
    print("|---|" + "---:|" * len(OUTPUTS))
    for s, d in eff.items():
        cells = []
        for o in OUTPUTS:
            q5, q50, q95 = np.percentile(d[o] * 100, [5, 50, 95])
            cells.append(f"{q50:+.1f}% [{q5:+.1f}, {q95:+.1f}]")
        print(f"| {s} | " + " | ".join(cells) + " |")
    how = ("uniform over its range" if args.prior
           else "the shipped posterior's jointly, the rest uniform over their ranges")
    print(f"\n{args.samples} draws of every uncertain constant ({how}), seed {args.seed}; "
          "median [5th, 95th percentile] of the effect against actual_trend.")


if __name__ == "__main__":
    main()
