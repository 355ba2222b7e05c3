"""Hand-written numpy version of the reference model, vectorised over scenarios.

This is the *floor* the engine is measured against (issue 2, section 8): the
reference Vensim model ``../shared/bench/regional_economy.mdl`` (three-sector
regional economy, 2020-2035 at TIME STEP 0.25) written out by hand as straight
numpy, one array operation per equation, every scenario integrated together.

Semantics follow Vensim (and PySD 3.14, which we check against):

* Euler integration, ``stock(t + dt) = stock(t) + dt * net_flow(t)``; the values
  saved at time ``t`` are the stocks at ``t`` and the auxiliaries computed
  from them.
* ``SMOOTH(x, T)`` is a stock initialised to ``x(t0)`` with
  ``d/dt = (x - stock) / T``.
* ``DELAY1(x, T)`` is a stock initialised to ``x(t0) * T``; output
  ``stock / T``; ``d/dt = x - stock / T``.
* ``STEP(h, t0)`` is ``h`` once ``time + dt/2 > t0``, else 0.
* ``RAMP(s, t0, t1)`` is ``s * (MIN(time, t1) - t0)`` once
  ``time + 1e-6 > t0``, else 0.
* Lookups interpolate linearly and hold the end values outside their range.

``run_floor(n, params)`` returns ``{name: array of shape (n, T)}`` for the
ten variables in ``SAVED``, saved every SAVEPER (= TIME STEP = 0.25, so
T = 61), and ``"time"`` (shape ``(T,)``).
"""

from __future__ import annotations

import numpy as np

INITIAL_TIME = 2020.0
FINAL_TIME = 2035.0
TIME_STEP = 0.25
SAVEPER = 0.25

#: Constants of the reference model with their Vensim defaults
#: (identifier = Vensim name lower-cased, spaces -> underscores).
DEFAULTS: dict[str, float] = {
    "tfp_growth_rate": 0.012,
    "savings_rate": 0.3,
    "share_primary": 0.08,
    "share_secondary": 0.42,
    "depreciation_rate_primary": 0.05,
    "depreciation_rate_secondary": 0.06,
    "depreciation_rate_tertiary": 0.05,
    "alpha_primary": 0.4,
    "alpha_secondary": 0.35,
    "alpha_tertiary": 0.3,
    "scale_primary": 4.41,
    "scale_secondary": 19.3,
    "scale_tertiary": 24.3,
    "gdp_smoothing_time": 2.0,
    "rural_birth_rate": 0.011,
    "urban_birth_rate": 0.008,
    "death_rate": 0.0075,
    "migration_time": 5.0,
    "participation_rate": 0.55,
    "tax_rate": 0.155,
    "base_spending_share": 0.17,
    "consolidation_cut": 0.02,
    "debt_ceiling": 0.6,
    "base_interest_rate": 0.035,
    "project_annual_spending": 60.0,
    "project_start_year": 2026.0,
    "project_duration": 5.0,
    "construction_delay": 3.0,
    "base_intensity_improvement": 0.03,
    "efficiency_policy_slope": 0.002,
    "efficiency_policy_start": 2025.0,
    "efficiency_policy_end": 2030.0,
    "carbon_factor_multiplier": 1.0,
}

#: The ten variables saved by every benchmark (ours, floor; PySD returns the
#: same ten through ``return_columns``).
SAVED: tuple[str, ...] = (
    "gdp",
    "perceived_gdp",
    "capital_secondary",
    "tfp",
    "total_population",
    "urbanization_fraction",
    "government_debt",
    "debt_to_gdp_ratio",
    "emissions",
    "cumulative_emissions",
)

#: Vensim names of SAVED, for PySD.
VENSIM_NAMES: dict[str, str] = {
    "gdp": "GDP",
    "perceived_gdp": "Perceived GDP",
    "capital_secondary": "Capital Secondary",
    "tfp": "TFP",
    "total_population": "Total Population",
    "urbanization_fraction": "Urbanization Fraction",
    "government_debt": "Government Debt",
    "debt_to_gdp_ratio": "Debt to GDP Ratio",
    "emissions": "Emissions",
    "cumulative_emissions": "Cumulative Emissions",
}

# Lookup tables (x, y); np.interp clamps outside the range, as Vensim does.
TARGET_URBANIZATION_X = np.array([0.0, 20.0, 50.0, 100.0, 150.0, 250.0])
TARGET_URBANIZATION_Y = np.array([0.2, 0.45, 0.6, 0.72, 0.78, 0.82])
RISK_PREMIUM_X = np.array([0.0, 0.4, 0.6, 0.8, 1.0, 1.5])
RISK_PREMIUM_Y = np.array([0.0, 0.0, 0.005, 0.015, 0.03, 0.06])
CARBON_FACTOR_X = np.array([2020.0, 2025.0, 2030.0, 2035.0, 2040.0])
CARBON_FACTOR_Y = np.array([2.6, 2.45, 2.2, 1.9, 1.6])


def _constants(n: int, params: dict | None) -> dict[str, object]:
    c: dict[str, object] = dict(DEFAULTS)
    for name, value in (params or {}).items():
        if name not in DEFAULTS:
            raise KeyError(f"unknown constant {name!r}")
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 0:
            c[name] = float(arr)
        elif arr.shape == (n,):
            c[name] = arr
        else:
            raise ValueError(f"{name}: expected a scalar or shape ({n},), got {arr.shape}")
    return c


def run_floor(n: int, params: dict[str, np.ndarray] | None = None,
              saved: tuple[str, ...] = SAVED, block: int | None = None) -> dict[str, np.ndarray]:
    """Integrate ``n`` scenarios of the reference model; see the module doc.

    ``params`` maps constant names (``DEFAULTS``) to a scalar or an array of
    ``n`` values, one per scenario; ``saved`` is a subset of ``SAVED``.
    ``block``: integrate the scenarios in blocks of this many (keeps the
    temporaries in cache; the plain floor is ``block=None``, all at once).
    """
    unknown = set(saved) - set(SAVED)
    if unknown:
        raise KeyError(f"not saved by the floor: {sorted(unknown)}")
    if block is not None and n > block:
        c = _constants(n, params)
        out = None
        for a in range(0, n, block):
            b = min(n, a + block)
            part = _run(b - a, {k: (v[a:b] if isinstance(v, np.ndarray) else v) for k, v in c.items()},
                        saved)
            if out is None:
                out = {k: np.empty((len(part["time"]), n)) for k in saved}
                times = part["time"]
            for k in saved:
                out[k][:, a:b] = part[k].T
        result = {k: v.T for k, v in out.items()}
        result["time"] = times
        return result
    return _run(n, params, saved)


def _run(n: int, params: dict | None, saved: tuple[str, ...]) -> dict[str, np.ndarray]:
    c = _constants(n, params)
    tfp_growth_rate = c["tfp_growth_rate"]
    savings_rate = c["savings_rate"]
    share_primary = c["share_primary"]
    share_secondary = c["share_secondary"]
    share_tertiary = 1 - share_primary - share_secondary
    dr_p = c["depreciation_rate_primary"]
    dr_s = c["depreciation_rate_secondary"]
    dr_t = c["depreciation_rate_tertiary"]
    a_p, a_s, a_t = c["alpha_primary"], c["alpha_secondary"], c["alpha_tertiary"]
    one_a_p, one_a_s, one_a_t = 1 - a_p, 1 - a_s, 1 - a_t
    sc_p, sc_s, sc_t = c["scale_primary"], c["scale_secondary"], c["scale_tertiary"]
    gdp_smoothing_time = c["gdp_smoothing_time"]
    rural_birth_rate = c["rural_birth_rate"]
    urban_birth_rate = c["urban_birth_rate"]
    death_rate = c["death_rate"]
    migration_time = c["migration_time"]
    participation_rate = c["participation_rate"]
    tax_rate = c["tax_rate"]
    base_spending_share = c["base_spending_share"]
    cut_share = base_spending_share - c["consolidation_cut"]
    debt_ceiling = c["debt_ceiling"]
    base_interest_rate = c["base_interest_rate"]
    pas = c["project_annual_spending"]
    p_start = c["project_start_year"]
    p_end = p_start + c["project_duration"]
    construction_delay = c["construction_delay"]
    base_intensity_improvement = c["base_intensity_improvement"]
    ep_slope = c["efficiency_policy_slope"]
    ep_start = c["efficiency_policy_start"]
    ep_end = c["efficiency_policy_end"]
    carbon_factor_multiplier = c["carbon_factor_multiplier"]

    dt = TIME_STEP
    n_steps = int(round((FINAL_TIME - INITIAL_TIME) / dt))
    save_every = int(round(SAVEPER / dt))
    n_saved = n_steps // save_every + 1
    times = INITIAL_TIME + dt * save_every * np.arange(n_saved)

    full = np.ones(n)
    # Stocks (shape (n,)).
    capital_primary = 600.0 * full
    capital_secondary = 4000.0 * full
    capital_tertiary = 5000.0 * full
    tfp = 1.0 * full
    rural_population = 20.0 * full
    urban_population = 30.0 * full
    government_debt = 1200.0 * full
    energy_intensity = 0.05 * full
    cumulative_emissions = 0.0 * full
    perceived_gdp = None            # SMOOTH stock, initialised from GDP(t0)
    delay_state = None              # DELAY1 stock, initialised from input(t0) * T

    # Saved as (T, n) rows (contiguous writes), returned transposed (n, T).
    out = {name: np.empty((n_saved, n)) for name in saved}

    t = INITIAL_TIME
    k_save = 0
    for k in range(n_steps + 1):
        # --- auxiliaries at time t -------------------------------------
        total_population = rural_population + urban_population
        urbanization_fraction = urban_population / total_population
        labour_primary = rural_population * participation_rate
        urban_labour = urban_population * participation_rate
        tertiary_labour_share = 0.3 + 0.5 * urbanization_fraction
        labour_secondary = urban_labour * (1 - tertiary_labour_share)
        labour_tertiary = urban_labour * tertiary_labour_share
        output_primary = (sc_p * tfp * capital_primary ** a_p
                          * labour_primary ** one_a_p)
        output_secondary = (sc_s * tfp * capital_secondary ** a_s
                            * labour_secondary ** one_a_s)
        output_tertiary = (sc_t * tfp * capital_tertiary ** a_t
                           * labour_tertiary ** one_a_t)
        gdp = output_primary + output_secondary + output_tertiary
        if perceived_gdp is None:
            perceived_gdp = gdp.copy()
        gdp_per_capita = perceived_gdp / total_population
        target_urbanization = np.interp(gdp_per_capita, TARGET_URBANIZATION_X,
                                        TARGET_URBANIZATION_Y)
        migration = ((target_urbanization - urbanization_fraction)
                     * total_population / migration_time)
        private_investment = savings_rate * gdp
        tfp_growth = tfp * tfp_growth_rate
        # Fiscal.
        debt_to_gdp_ratio = government_debt / gdp
        government_consumption_share = np.where(
            debt_to_gdp_ratio > debt_ceiling, cut_share, base_spending_share)
        effective_interest_rate = base_interest_rate + np.interp(
            debt_to_gdp_ratio, RISK_PREMIUM_X, RISK_PREMIUM_Y)
        interest_payments = government_debt * effective_interest_rate
        half = t + dt / 2
        project_spending = pas * (half > p_start) - pas * (half > p_end)
        if delay_state is None:
            delay_state = (project_spending * construction_delay) * full
        project_capital_completion = delay_state / construction_delay
        government_spending = (government_consumption_share * perceived_gdp
                               + project_spending + interest_payments)
        government_deficit = government_spending - tax_rate * gdp
        # Energy.
        efficiency_policy = ((t + 1e-6 > ep_start) * ep_slope
                             * (np.minimum(ep_end, t) - ep_start))
        intensity_decline = energy_intensity * (
            base_intensity_improvement + efficiency_policy)
        energy_demand = energy_intensity * gdp
        carbon_factor = (np.interp(t, CARBON_FACTOR_X, CARBON_FACTOR_Y)
                         * carbon_factor_multiplier)
        emissions = energy_demand * carbon_factor

        if k % save_every == 0:
            now = {
                "gdp": gdp, "perceived_gdp": perceived_gdp,
                "capital_secondary": capital_secondary, "tfp": tfp,
                "total_population": total_population,
                "urbanization_fraction": urbanization_fraction,
                "government_debt": government_debt,
                "debt_to_gdp_ratio": debt_to_gdp_ratio,
                "emissions": emissions,
                "cumulative_emissions": cumulative_emissions,
            }
            for name in saved:
                out[name][k_save] = now[name]
            k_save += 1
        if k == n_steps:
            break

        # --- Euler step ------------------------------------------------
        capital_primary = capital_primary + dt * (
            private_investment * share_primary - capital_primary * dr_p)
        capital_secondary = capital_secondary + dt * (
            private_investment * share_secondary + project_capital_completion
            - capital_secondary * dr_s)
        capital_tertiary = capital_tertiary + dt * (
            private_investment * share_tertiary - capital_tertiary * dr_t)
        tfp = tfp + dt * tfp_growth
        rural_population = rural_population + dt * (
            rural_population * rural_birth_rate
            - rural_population * death_rate - migration)
        urban_population = urban_population + dt * (
            urban_population * urban_birth_rate
            - urban_population * death_rate + migration)
        government_debt = government_debt + dt * government_deficit
        energy_intensity = energy_intensity - dt * intensity_decline
        cumulative_emissions = cumulative_emissions + dt * emissions
        perceived_gdp = perceived_gdp + dt * (gdp - perceived_gdp) / gdp_smoothing_time
        delay_state = delay_state + dt * (project_spending - project_capital_completion)
        t = INITIAL_TIME + (k + 1) * dt

    result = {name: arr.T for name, arr in out.items()}
    result["time"] = times
    return result


if __name__ == "__main__":  # pragma: no cover - quick look
    import time as _time

    for n in (1, 1000, 10000):
        t0 = _time.perf_counter()
        r = run_floor(n, {"savings_rate": np.linspace(0.2, 0.4, n)})
        print(f"N={n}: {1e3 * (_time.perf_counter() - t0):.1f} ms, "
              f"gdp[0, -1]={r['gdp'][0, -1]:.6f}")
