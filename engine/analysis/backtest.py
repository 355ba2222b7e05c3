"""Backtests: fit the posterior on the data through a year, forecast the rows after it (``lxsd backtest``).

The posterior is sampled from the rows ending at or before ``until``
(:func:`engine.analysis.posterior.sample_posterior` with ``Likelihood(until=...)``); its
posterior predictive of the held-back rows (the simulated value with the observation
error of the data map) is compared with what was published:

* MAPE (%) of the predictive median;
* Theil's inequality coefficient U1 = RMSE / (RMS(forecast) + RMS(actual)), 0 = perfect,
  1 = worst (defined with a single held-back row, unlike U2, which needs the previous year);
* coverage: the share of held-back rows inside the central 50 % and 90 % predictive
  intervals (a calibrated forecast covers about 50 % and 90 %).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

COLUMNS = ["indicator", "measure", "n", "mape", "theil_u", "coverage_50", "coverage_90", "actual", "median",
           "p05", "p95"]


def backtest_table(idata) -> pd.DataFrame:
    """Per indicator with held-back rows: n, MAPE, Theil's U1, 50 %/90 % coverage, and (for one row)
    the actual value, the predictive median and 5-95 % interval; a final row ``all`` pools every
    held-back row's coverage."""
    rows_meta = json.loads(idata.posterior.attrs["lxsd_rows"])
    fit = np.asarray(idata.observed_data["fit_row"].values).astype(bool)
    obs = np.asarray(idata.observed_data["observation"].values, dtype=float)
    pp = np.asarray(idata.posterior_predictive["observation"].values, dtype=float).reshape(-1, len(obs))
    with np.errstate(invalid="ignore"):
        q = np.nanquantile(pp, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    held = np.flatnonzero(~fit)
    by: dict[str, list[int]] = {}
    for i in held:
        by.setdefault(rows_meta[i]["indicator"], []).append(int(i))
    out = []
    for ind, idx in by.items():
        a, f = obs[idx], q[2, idx]
        err = f - a
        denom = np.sqrt(np.mean(f ** 2)) + np.sqrt(np.mean(a ** 2))
        c50 = (q[1, idx] <= a) & (a <= q[3, idx])
        c90 = (q[0, idx] <= a) & (a <= q[4, idx])
        one = len(idx) == 1
        out.append({"indicator": ind, "measure": rows_meta[idx[0]]["measure"], "n": len(idx),
                    "mape": float(np.mean(np.abs(err / a)) * 100) if np.all(a != 0) else float("nan"),
                    "theil_u": float(np.sqrt(np.mean(err ** 2)) / denom) if denom > 0 else float("nan"),
                    "coverage_50": float(np.mean(c50)), "coverage_90": float(np.mean(c90)),
                    "actual": float(a[0]) if one else float("nan"), "median": float(f[0]) if one else float("nan"),
                    "p05": float(q[0, idx[0]]) if one else float("nan"),
                    "p95": float(q[4, idx[0]]) if one else float("nan")})
    if held.size:
        a = obs[held]
        out.append({"indicator": "all", "measure": "", "n": int(held.size), "mape": float("nan"),
                    "theil_u": float("nan"),
                    "coverage_50": float(np.mean((q[1, held] <= a) & (a <= q[3, held]))),
                    "coverage_90": float(np.mean((q[0, held] <= a) & (a <= q[4, held]))),
                    "actual": float("nan"), "median": float("nan"), "p05": float("nan"), "p95": float("nan")})
    return pd.DataFrame(out, columns=COLUMNS)
