"""The Streamlit side: caches, the sidebar (language, page, scenarios, levers) and the URL.

``main()`` is all ``app.py`` calls. Pages are in ``lxapp.pages``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from lxapp import core, state
from lxapp.core import CURRENT, DEFAULT
from lxapp.i18n import t

ENSEMBLE_N = 500


# ------------------------------------------------------------------ caches
@st.cache_resource(show_spinner=False)
def get_bundle(key: str) -> core.Bundle:
    """Compiled once per model file version (key changes when a file changes)."""
    return core.load_bundle()


@st.cache_data(show_spinner=False, max_entries=512)
def cached_run(key: str, overrides_json: str) -> pd.DataFrame:
    import json
    return core.run_one(get_bundle(key), json.loads(overrides_json))


@st.cache_data(show_spinner=False, max_entries=32)
def cached_ensemble(key: str, overrides_json: str, variables: tuple[str, ...], n: int):
    """Percentile bands of the current settings, and the probability of meeting each target."""
    import json
    from lxapp import scoring
    bundle = get_bundle(key)
    overrides = json.loads(overrides_json)
    try:
        targets, _ = scoring.load(bundle)
    except Exception:  # noqa: BLE001 - no targets: bands only
        targets = []
    tvars = [v for v in scoring.target_variables(targets) if v in bundle.model.visible]
    names = list(dict.fromkeys(list(variables) + tvars))
    bands, res = core.ensemble(bundle, overrides, names, n=n)
    prob = scoring.probabilities(targets, res) if targets else pd.DataFrame(columns=["id", "p_met"])
    return bands, prob


# ------------------------------------------------------------------ the view context
@dataclass
class Ctx:
    bundle: core.Bundle
    lang: str
    page: str
    selected: list[str]
    reference: str
    base: str
    lever_values: dict
    unc: bool
    overrides: dict = field(default_factory=dict)     # scenario -> overrides
    df: pd.DataFrame | None = None                    # (scenario, time) x columns, with aggregates
    bands: dict = field(default_factory=dict)          # scenario -> column -> (5, T)
    prob: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)          # uploaded / library scenarios

    def label(self, name: str) -> str:
        return core.scenario_label(self.bundle, name, self.lang, self.extra)

    @property
    def labels(self) -> dict[str, str]:
        return {s: self.label(s) for s in self.selected}

    def vlabel(self, col: str) -> str:
        return core.var_label(self.bundle, col, self.lang)


def _init_from_url(bundle: core.Bundle) -> None:
    """Once per session: the URL's query parameters become the widgets' state."""
    if st.session_state.get("_url_done"):
        return
    st.session_state["_url_done"] = True
    try:
        view = state.decode({k: st.query_params.get(k) for k in st.query_params.keys()})
    except Exception:  # noqa: BLE001
        view = {}
    ss = st.session_state
    ss["en"] = view.get("lang") == "en"
    if "page" in view:
        ss["page"] = view["page"]
    if view.get("unc"):
        ss["unc"] = True
    names = _scenario_options(bundle)
    if "base" in view and view["base"] in bundle.scenarios:
        ss["base"] = view["base"]
    for s in view.get("sc", []):
        if s.startswith("lib:") and s not in ss.setdefault("extra", {}):
            _add_library_entry(s)
    if "sc" in view:
        ss["sc"] = [s for s in view["sc"] if s in names or s in ss.get("extra", {})]
    if "more" in view:
        ss["more"] = [m for m in view["more"] if m in bundle.model.constants]
    ss["_lv_url"] = view.get("lv", {})
    if "ref" in view:
        ss["_ref_url"] = view["ref"]


def _add_library_entry(key: str) -> bool:
    from lxapp.library import Library
    try:
        entry = Library().get(int(key.split(":", 1)[1]))
    except Exception:  # noqa: BLE001
        return False
    if entry is None:
        return False
    st.session_state.setdefault("extra", {})[key] = {"label": entry["name"], "overrides": entry["overrides"]}
    return True


def _scenario_options(bundle: core.Bundle) -> list[str]:
    return [CURRENT] + list(bundle.scenarios)


def _default_selection(bundle: core.Bundle) -> list[str]:
    pick = [s for s in ("plan", "actual_trend") if s in bundle.scenarios]
    return [CURRENT] + (pick or [DEFAULT])


def _default_base(bundle: core.Bundle) -> str:
    for s in ("actual_trend", "plan"):
        if s in bundle.scenarios:
            return s
    return DEFAULT


# ------------------------------------------------------------------ sidebar
def sidebar(bundle: core.Bundle) -> Ctx:
    ss = st.session_state
    sb = st.sidebar
    for k, v in ss.pop("_pending", {}).items():
        ss[k] = v
        for lg in ("zh", "en"):          # the widgets re-read the new value
            ss.pop(f"{k}_{lg}", None)
    lang = "en" if sb.toggle("English", key="en") else "zh"
    pages = list(state.PAGES)
    if ss.get("page") not in pages:
        ss["page"] = pages[0]
    page = sb.radio(t("page", lang), pages, key="page", format_func=lambda p: t(p, lang))
    extra = ss.setdefault("extra", {})
    options = _scenario_options(bundle) + [k for k in extra if k not in bundle.scenarios]
    ctx_label = lambda s: core.scenario_label(bundle, s, lang, extra)  # noqa: E731
    w = widget_key("sc", lang, _default_selection(bundle), lambda v: [s for s in v if s in options])
    selected = sb.multiselect(t("scenarios", lang), options, key=w, format_func=ctx_label)
    ss["sc"] = list(selected)
    if not selected:
        selected = [CURRENT]
    if "_ref_url" in ss:
        ss["ref"] = ss.pop("_ref_url")
        ss.pop(f"ref_{lang}", None)
    ref_opts = list(selected)
    first = next((s for s in ref_opts if s != CURRENT), ref_opts[0])
    w = widget_key("ref", lang, first, lambda v: v if v in ref_opts else first)
    reference = sb.selectbox(t("reference", lang), ref_opts, key=w, format_func=ctx_label)
    ss["ref"] = reference
    base_opts = list(bundle.scenarios)
    w = widget_key("base", lang, _default_base(bundle), lambda v: v if v in base_opts else _default_base(bundle))
    base = sb.selectbox(t("base", lang), base_opts, key=w, format_func=ctx_label)
    ss["base"] = base
    more_opts = core.more_constants(bundle)
    w = widget_key("more", lang, [], lambda v: [m for m in v if m in more_opts])
    more = sb.multiselect(t("more_levers", lang), more_opts, key=w,
                          format_func=lambda n: core.var_label(bundle, n, lang))
    ss["more"] = list(more)
    lever_list = core.levers(bundle, more)
    # a new base scenario resets the levers to its values; the URL's levers apply once
    url_lv = ss.pop("_lv_url", None)
    if ss.get("_base_prev") != base or url_lv is not None or ss.pop("_reset", False):
        for lv in lever_list:
            ss[f"lv_{lv.name}"] = _fit(lv, core.scenario_value(bundle, base, lv))
        for name, val in (url_lv or {}).items():
            for lv in lever_list:
                if lv.name == name:
                    ss[f"lv_{name}"] = _fit(lv, val)
        ss["_base_prev"] = base
    values = {}
    for lv in lever_list:
        key = f"lv_{lv.name}"
        if key not in ss:
            ss[key] = _fit(lv, core.scenario_value(bundle, base, lv))
        label = core.var_label(bundle, lv.name, lang)
        if lv.kind == "multiplier":
            label += f" ({t('times_default', lang)})"
        unit = core.var_unit(bundle, lv.name)
        helptext = (bundle.variables[lv.name].doc or "") + (f" [{unit}]" if unit and lv.kind != "multiplier" else "")
        fmt = "%d" if lv.kind == "year" else ("%.2f" if lv.step >= 0.01 else "%.4f")
        if lv.kind == "year":
            ss[key] = int(ss[key])
            values[lv.name] = float(sb.slider(label, int(lv.low), int(lv.high), step=1, key=key,
                                              help=helptext or None))
        else:
            values[lv.name] = float(sb.slider(label, float(lv.low), float(lv.high), step=float(lv.step),
                                              key=key, format=fmt, help=helptext or None))
    if sb.button(t("reset", lang)):
        ss["_reset"] = True
        st.rerun()
    unc = sb.toggle(t("uncertainty", lang), key="unc")
    # the URL holds the view, so a copied link reopens it
    changed = {k: v for k, v in values.items()
               if abs(v - _fit(next(l for l in lever_list if l.name == k),
                               core.scenario_value(bundle, base, next(l for l in lever_list if l.name == k)))) > 1e-9}
    view = {"lang": lang, "page": page, "sc": selected, "ref": reference, "base": base, "lv": changed,
            "unc": unc, "more": more}
    try:
        q = state.encode(view)
        if dict(st.query_params) != q:
            st.query_params.from_dict(q)
    except Exception:  # noqa: BLE001 - the URL is a convenience
        pass
    return Ctx(bundle, lang, page, selected, reference, base, values, unc, extra=extra)


def widget_key(name: str, lang: str, default, clean=lambda v: v) -> str:
    """The key of a widget whose labels depend on the language: one widget per language
    (Streamlit keeps a widget's option labels), both fed from the language-free value
    st.session_state[name], so a language switch keeps the choice."""
    ss = st.session_state
    key = f"{name}_{lang}"
    if key not in ss:
        ss[key] = clean(ss.get(name, default))
    else:
        ss[key] = clean(ss[key])
    return key


def _fit(lv: core.Lever, val: float):
    v = min(max(float(val), lv.low), lv.high)
    if lv.kind == "year":
        return int(round(v))
    steps = round((v - lv.low) / lv.step)
    return float(round(lv.low + steps * lv.step, 10))


# ------------------------------------------------------------------ runs
def compute(ctx: Ctx) -> None:
    """Runs every selected scenario (each cached by its overrides) and, with uncertainty on,
    the ensemble of the current settings."""
    b = ctx.bundle
    base_over = dict(b.scenarios[ctx.base].overrides) if ctx.base in b.scenarios else {}
    names = list(dict.fromkeys(ctx.selected + [ctx.reference]))
    for s in names:
        if s == CURRENT:
            ctx.overrides[s] = core.current_overrides(b, base_over, ctx.lever_values)
        elif s in b.scenarios:
            ctx.overrides[s] = dict(b.scenarios[s].overrides)
        elif s in ctx.extra:
            ctx.overrides[s] = dict(ctx.extra[s]["overrides"])
    runs = {}
    for s, ov in ctx.overrides.items():
        runs[s] = cached_run(b.key, core.overrides_key(ov))
    df = core.combine(runs)
    ctx.df = core.add_aggregates(b, df)
    if ctx.unc and CURRENT in ctx.overrides:
        vars_ = tuple(v for v in core.HEADLINE if v in b.model.visible)
        bands, prob = cached_ensemble(b.key, core.overrides_key(ctx.overrides[CURRENT]), vars_, ENSEMBLE_N)
        ctx.bands = {CURRENT: _with_aggregates(b, bands)}
        ctx.prob = prob


def _with_aggregates(b: core.Bundle, bands: dict) -> dict:
    m = b.model.model
    out = dict(bands)
    for sub, (parent, elems) in m.subranges.items():
        for name in ("industry_share", "value_added"):
            cols = [f"{name}[{e}]" for e in elems]
            if all(c in bands for c in cols):
                out[f"{name}[{sub}]"] = sum(bands[c] for c in cols)   # approximate: sum of percentiles
    return out


# ------------------------------------------------------------------ main
def main() -> None:
    t0 = time.perf_counter()
    st.set_page_config(page_title="临湘SD · Linxiang SD", page_icon="📈", layout="wide")
    try:
        bundle = get_bundle(core.bundle_key())
    except Exception as exc:  # noqa: BLE001 - even the demo model failed: say so and stop
        st.error(f"The model could not be loaded / 模型无法载入: {exc}")
        return
    _init_from_url(bundle)
    ctx = sidebar(bundle)
    st.title(t("title", ctx.lang))
    if bundle.load_error:
        st.warning(t("demo_warning", ctx.lang) + "\n\n" + bundle.load_error[:1500])
    if bundle.scenario_errors:
        with st.expander(t("scenario_errors", ctx.lang)):
            for e in bundle.scenario_errors:
                st.text(e)
    try:
        compute(ctx)
    except Exception as exc:  # noqa: BLE001 - a run that fails is a message, not a crash
        st.error(f"{type(exc).__name__}: {exc}")
        return
    from lxapp import pages
    getattr(pages, f"page_{ctx.page}")(ctx)
    ms = (time.perf_counter() - t0) * 1000
    st.sidebar.caption(f"{t('timing', ctx.lang)}: {ms:.0f} ms · {bundle.model.model.name}")
