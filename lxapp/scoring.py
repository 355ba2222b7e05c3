"""The 专栏1 scorecard for the app: engine.scorecard when it is there, else the targets'
own expressions (engine.analysis.ensemble.Target) evaluated here; and the probability of
meeting each target over an ensemble."""
from __future__ import annotations

import numpy as np
import pandas as pd

YEARS = (2025, 2030, 2035)


def load(bundle):
    """(targets, notes) or raises the reason they are unavailable."""
    from engine.analysis.ensemble import load_targets

    if bundle.targets_path is None:
        raise FileNotFoundError("no targets file (model/targets.toml) for this model")
    return load_targets(bundle.targets_path, bundle.model)


def target_variables(targets) -> list[str]:
    names: list[str] = []
    for t in targets:
        names += [v for v in t.expr.variables if v not in names]
    return names


def scorecard_table(bundle, df: pd.DataFrame) -> pd.DataFrame:
    """One row per indicator per scenario: value in 2025/2030/2035, target, margin, met."""
    try:
        from engine.scorecard import scorecard  # the colleague's implementation, when present
    except ImportError:
        scorecard = None
    if scorecard is not None and bundle.targets_path is not None:
        return scorecard(df, bundle.targets_path)
    targets, _ = load(bundle)
    rows = []
    for sc in dict.fromkeys(df.index.get_level_values("scenario")):
        sub = df.xs(sc, level="scenario")
        times = sub.index.to_numpy(dtype=float)

        def at(col, year, sub=sub, times=times):
            return np.asarray([np.interp(year, times, sub[col].to_numpy())])

        for t in targets:
            row = {"scenario": sc, "id": t.id, "name_zh": t.name_zh, "name_en": t.name_en, "kind": t.kind,
                   "unit": t.unit, "target": t.target}
            try:
                for y in YEARS:
                    row[f"value_{y}"] = float(t.value(at, y)[0]) if times[0] <= y <= times[-1] else np.nan
                v = float(t.value(at)[0])
                row["margin"] = float(t.margin(v))
                row["met"] = bool(row["margin"] >= 0)
            except Exception:  # noqa: BLE001 - a column the model lacks: leave the row empty
                row["met"] = None
            rows.append(row)
    return pd.DataFrame(rows)


def probabilities(targets, res) -> pd.DataFrame:
    """Share of the runs in ``res`` (engine Results of an ensemble) meeting each target."""
    at = _at_named(res, np.asarray(res.times, dtype=float))
    out = []
    for t in targets:
        try:
            m = np.asarray(t.margin(t.value(at)), dtype=float)
        except Exception:  # noqa: BLE001 - an output the ensemble did not save
            continue
        ok = np.isfinite(m)
        out.append({"id": t.id, "p_met": float(np.mean(m[ok] >= 0)) if ok.any() else np.nan,
                    "median_margin": float(np.median(m[ok])) if ok.any() else np.nan})
    return pd.DataFrame(out, columns=["id", "p_met", "median_margin"])


def _at_named(res, times):
    cache: dict[str, np.ndarray] = {}

    def at(col, year):
        idx = np.flatnonzero(np.isclose(times, year))
        if not len(idx):
            raise KeyError(year)
        if col not in cache:
            if "[" in col:
                name, el = col[:-1].split("[", 1)
                arr = res[name]
                els = res._elements[name]
                i = els.index(tuple(e.strip() for e in el.split(",")))
                cache[col] = arr.reshape(arr.shape[0], arr.shape[1], -1)[:, :, i]
            else:
                cache[col] = res[col]
        return cache[col][:, idx[0]]
    return at
