"""The 专栏1 scorecard as people read it. Scores come from the engine (``engine.scorecard``
for met/missed and margins, ``engine.analysis.ensemble`` for targets and probabilities); this
module only lays them out: an indicator × scenario matrix with localised headers, and a summary."""
from __future__ import annotations

import math

import pandas as pd

from lxapp.i18n import t


def load(bundle):
    """(targets, notes) from the engine, or raises the reason they are unavailable."""
    from engine.analysis.ensemble import load_targets

    if bundle.targets_path is None:
        raise FileNotFoundError("no targets file (model/targets.toml) for this model")
    return load_targets(bundle.targets_path, bundle.model)


def target_variables(targets) -> list[str]:
    names: list[str] = []
    for t_ in targets:
        names += [v for v in t_.expr.variables if v not in names]
    return names


def scorecard_table(bundle, df: pd.DataFrame) -> pd.DataFrame:
    """The engine's scorecard: one row per indicator per scenario (``engine.scorecard.scorecard``)."""
    from engine.scorecard import scorecard

    if bundle.targets_path is None:
        raise FileNotFoundError("no targets file (model/targets.toml) for this model")
    return scorecard(df, bundle.targets_path)


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if abs(x) < 1e-9:           # rounding noise of a value exactly at its target
        return "0"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.3g}"


def _signed(x: float) -> str:
    return ("+" if x >= 0 else "−") + _num(abs(x))


def matrix(long: pd.DataFrame, scenarios: list[str], reference: str, lang: str, label,
           prob: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Indicator × scenario: "✔ value (margin)" or "✘ ...", the ensemble's probability for the
    current settings where it ran; and a same-shaped frame of statuses (met, missed,
    changed_met/changed_missed where the status differs from the reference's; "" otherwise)."""
    name_col = "name_zh" if lang == "zh" else "name_en"
    ids = list(dict.fromkeys(long["id"]))
    first = long.drop_duplicates("id").set_index("id")
    p = prob.set_index("id")["p_met"] if prob is not None and len(prob) else None
    cols: dict[str, str] = {}
    for s_ in scenarios:     # column headers: the scenarios' labels, made unique
        lab = label(s_)
        cols[s_] = lab if lab not in cols.values() else f"{lab} ({s_})"
    rows, status = [], []
    for i in ids:
        info = first.loc[i]
        from lxapp.core import translate_unit
        row = {t("indicator", lang): info[name_col] or info["name_en"],
               t("unit", lang): translate_unit(str(info["unit"] or ""), lang),
               t("kind", lang): t("binding" if info["kind"] == "binding" else "expected", lang),
               t("target", lang) + " 2025": _num(info["target_2025"])}
        srow = {k: "" for k in row}
        ref = long[(long["id"] == i) & (long["scenario"] == reference)]
        ref_met = ref["met"].iloc[0] if len(ref) else None
        for s in scenarios:
            r = long[(long["id"] == i) & (long["scenario"] == s)]
            col = cols[s]
            if not len(r) or r["met"].iloc[0] is None:
                row[col] = t("not_modelled", lang)
                srow[col] = ""
                continue
            met = bool(r["met"].iloc[0])
            text = ("✔ " if met else "✘ ") + f"{_num(r['value_2025'].iloc[0])} ({t('margin', lang)} " \
                f"{_signed(float(r['margin'].iloc[0]))})"
            if p is not None and s == "current" and i in p.index and not math.isnan(p[i]):
                text += f" · P={p[i]:.0%}"
            changed = s != reference and ref_met is not None and met != bool(ref_met)
            row[col] = text + (" ⟲" if changed else "")
            srow[col] = ("changed_" if changed else "") + ("met" if met else "missed")
        rows.append(row)
        status.append(srow)
    return pd.DataFrame(rows), pd.DataFrame(status)


def summary(long: pd.DataFrame, scenarios: list[str], lang: str, label) -> pd.DataFrame:
    """Per scenario: targets met of those judged, binding ones apart."""
    rows = []
    for s in scenarios:
        sub = long[(long["scenario"] == s) & long["met"].notna()]
        bind = sub[sub["kind"] == "binding"]
        rows.append({t("scenario", lang): label(s),
                     t("met_count", lang): f"{int(sub['met'].astype(bool).sum())} / {len(sub)}",
                     t("binding_met", lang): f"{int(bind['met'].astype(bool).sum())} / {len(bind)}"})
    return pd.DataFrame(rows)
