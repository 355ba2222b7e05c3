"""LMDI decomposition of a change in CO2 into population, GDP per person, energy intensity
and carbon intensity (Kaya identity, additive LMDI-I; Ang 2004). Exact: the effects sum to
the change."""
from __future__ import annotations

import numpy as np
import pandas as pd

FACTORS = ("population", "gdp_per_person", "energy_intensity", "carbon_intensity")
COLUMNS = {"population": "population_resident", "gdp": "gdp_real", "energy": "energy_consumption",
           "co2": "co2_emissions"}


def log_mean(a, b):
    """L(a, b) = (a - b) / (ln a - ln b), and a where a == b."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - b) / (np.log(a) - np.log(b))
    return np.where(np.isclose(a, b, rtol=1e-12, atol=0), a, out)


def kaya_factors(pop, gdp, energy, co2) -> dict[str, np.ndarray]:
    pop, gdp, energy, co2 = (np.asarray(x, dtype=float) for x in (pop, gdp, energy, co2))
    return {"population": pop, "gdp_per_person": gdp / pop, "energy_intensity": energy / gdp,
            "carbon_intensity": co2 / energy}


def decompose(ref: dict, alt: dict) -> dict[str, np.ndarray]:
    """Effects of each factor on co2(alt) - co2(ref); ref/alt: dicts with population, gdp,
    energy, co2 (numbers or arrays of the same shape). Adds "total"."""
    fr = kaya_factors(ref["population"], ref["gdp"], ref["energy"], ref["co2"])
    fa = kaya_factors(alt["population"], alt["gdp"], alt["energy"], alt["co2"])
    w = log_mean(np.asarray(alt["co2"], dtype=float), np.asarray(ref["co2"], dtype=float))
    out = {f: w * np.log(fa[f] / fr[f]) for f in FACTORS}
    out["total"] = np.asarray(alt["co2"], dtype=float) - np.asarray(ref["co2"], dtype=float)
    return out


def available(df: pd.DataFrame) -> bool:
    return all(c in df.columns for c in COLUMNS.values())


def decompose_frame(df: pd.DataFrame, ref: str, alt: str) -> pd.DataFrame:
    """Per year: the LMDI effects of scenario ``alt`` against ``ref`` (df: (scenario, time))."""
    a, r = df.xs(alt, level="scenario"), df.xs(ref, level="scenario")
    pick = lambda d: {k: d[c].to_numpy() for k, c in COLUMNS.items()}  # noqa: E731
    eff = decompose(pick(r), pick(a))
    return pd.DataFrame(eff, index=a.index)
