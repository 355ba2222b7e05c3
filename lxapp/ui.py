"""The Streamlit side: caches, the sidebar (language, page, scenarios), the URL and main().

``main()`` is all ``app.py`` calls. Pages are in ``lxapp.pages``; the lever screen (sliders,
Δ cards and charts in one ``st.fragment``) in ``lxapp.leverpage``.

State: every view setting has one language-free entry in ``st.session_state`` (``page``,
``sc``, ``ref``, ``base``, ``lv`` = the levers someone moved, ``ch`` = charts, ``grp``, ``ly``,
``unc``, ``more``); widgets are bound to it by :func:`bind` (one widget per language, since
Streamlit ties a widget to its labels), and the URL is written from it after every run, so a
copied link reopens the view and a language switch keeps the page.
"""
from __future__ import annotations

import gc
import json
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
    """Compiled once per process and model file version (key changes when a file changes).

    Then the objects alive (the compiled model, the modules the pages import) are moved out of
    the garbage collector's sight (``gc.freeze``): Streamlit runs a full collection after every
    script run, which walked these ~160 000 long-lived objects each time, 150-300 ms a lever
    move on this machine, more than the model run; they live as long as the process anyway."""
    bundle = core.load_bundle()
    from lxapp import runpool
    runpool.start(bundle.path, bundle.key)     # worker processes compile it meanwhile (lxapp/runpool.py)
    from lxapp import pages  # noqa: F401 - imported before the freeze: its modules (plotly) live as long
    gc.collect()
    gc.freeze()
    return bundle


@st.cache_data(show_spinner=False, max_entries=1024)
def cached_run(key: str, overrides_json: str, variables: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One scenario's run, cached by the model version, its overrides and the variables saved
    (None: all; the lever screen saves only what it shows, ~30 % faster)."""
    from lxapp import runpool
    return runpool.run(get_bundle(key), json.loads(overrides_json), list(variables) if variables else None)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_ensemble(key: str, overrides_json: str, variables: tuple[str, ...], n: int):
    """Percentile bands of the current settings, the probability of meeting each target and
    the kind of ensemble (prior/posterior), from the engine."""
    from lxapp import scoring
    bundle = get_bundle(key)
    try:
        targets, _ = scoring.load(bundle)
    except Exception:  # noqa: BLE001 - no targets: bands only
        targets = []
    tvars = [v for v in scoring.target_variables(targets) if v in bundle.model.visible]
    names = list(dict.fromkeys(list(variables) + tvars))
    return core.ensemble(bundle, json.loads(overrides_json), names, n=n, targets=targets)


# ------------------------------------------------------------------ the view context
@dataclass
class Ctx:
    bundle: core.Bundle
    lang: str
    page: str
    selected: list[str]
    reference: str
    base: str
    moved: dict                                        # lever name -> value, only levers someone moved
    unc: bool
    overrides: dict = field(default_factory=dict)     # scenario -> overrides
    df: pd.DataFrame | None = None                    # (scenario, time) x columns, with aggregates
    bands: dict = field(default_factory=dict)          # scenario -> column -> (5, T)
    prob: pd.DataFrame | None = None
    ensemble_kind: str = ""                            # "prior" / "posterior", as the engine reports
    extra: dict = field(default_factory=dict)          # uploaded / library scenarios

    def label(self, name: str) -> str:
        return core.scenario_label(self.bundle, name, self.lang, self.extra)

    @property
    def labels(self) -> dict[str, str]:
        return {s: self.label(s) for s in dict.fromkeys(self.selected + [self.base])}

    def vlabel(self, col: str) -> str:
        return core.var_label(self.bundle, col, self.lang)

    @property
    def lever_values(self) -> dict[str, float]:
        """Every lever's position: moved ones as moved, the others at the base scenario's value."""
        out = {}
        for lv in core.levers(self.bundle, st.session_state.get("more", []), self.base):
            out[lv.name] = self.moved.get(lv.name, core.fit(lv, core.scenario_value(self.bundle, self.base, lv)))
        return out


# ------------------------------------------------------------------ binding widgets to state
def bind(name: str, lang: str, clean=lambda v: v) -> dict:
    """Keyword arguments that bind a widget to the language-free ``st.session_state[name]``:
    its own key per language, set from the value before the widget is drawn, copied back by
    the widget's callback. Use as ``st.selectbox(label, options, **bind("ref", lang, clean))``."""
    ss = st.session_state
    key = f"w_{name}_{lang}"
    ss[key] = clean(ss.get(name))
    ss[name] = ss[key]
    return {"key": key, "on_change": _copy_back, "args": (key, name)}


def _copy_back(key: str, name: str) -> None:
    st.session_state[name] = st.session_state[key]


def pending(**values) -> None:
    """View settings to change (from a button) before the next run draws its widgets."""
    st.session_state.update(values)


# ------------------------------------------------------------------ defaults and the URL
def _scenario_options(bundle: core.Bundle) -> list[str]:
    return [CURRENT] + list(bundle.scenarios)


def _default_base(bundle: core.Bundle) -> str:
    for s in ("actual_trend", "plan"):
        if s in bundle.scenarios:
            return s
    return DEFAULT


def _default_selection(bundle: core.Bundle, base: str) -> list[str]:
    """The current settings against their base; the plan as a third line where there is one."""
    return list(dict.fromkeys([CURRENT, base] + [s for s in ("plan",) if s in bundle.scenarios]))


def default_charts(bundle: core.Bundle, columns) -> list[str]:
    return [c for c in bundle.presentation.get("charts", []) if c in columns][:4]


def _init_state(bundle: core.Bundle) -> None:
    """Once per session: defaults, then the URL's settings, each checked against the model;
    what cannot be used is named in one message (never a traceback)."""
    ss = st.session_state
    if ss.get("_init_done"):
        return
    ss["_init_done"] = True
    try:
        raw = {k: st.query_params.get(k) for k in st.query_params}
    except Exception:  # noqa: BLE001 - an unreadable query string is an empty one
        raw = {}
    view, problems = state.decode(raw)
    problems += apply_view(bundle, view)
    ss["_url_problems"] = problems


def apply_view(bundle: core.Bundle, view: dict) -> list[str]:
    """Put a decoded view into the session state, checked against the model; returns problems."""
    ss = st.session_state
    problems: list[str] = []
    ss["lang"] = view.get("lang", ss.get("lang", "zh"))
    ss["page"] = view.get("page", ss.get("page", state.PAGES[0]))
    base = view.get("base")
    if base is not None and base not in bundle.scenarios:
        problems.append(f"base={base}: no such scenario")
        base = None
    ss["base"] = base or ss.get("base") or _default_base(bundle)
    for s in view.get("sc", []):
        if s.startswith("lib:") and s not in ss.setdefault("extra", {}) and not _add_library_entry(s):
            problems.append(f"sc={s}: no such saved scenario")
    names = _scenario_options(bundle) + list(ss.get("extra", {}))
    if "sc" in view:
        bad = [s for s in view["sc"] if s not in names]
        problems += [f"sc={s}: no such scenario" for s in bad if not s.startswith("lib:")]
        ss["sc"] = [s for s in dict.fromkeys(view["sc"]) if s in names]
    ss.setdefault("sc", _default_selection(bundle, ss["base"]))
    ref = view.get("ref")
    if ref is not None and ref not in names:
        problems.append(f"ref={ref}: no such scenario")
        ref = None
    ss["ref"] = ref or ss.get("ref") or ss["base"]
    ss["unc"] = bool(view.get("unc", ss.get("unc", False)))
    ss["ia"] = bool(view.get("ia", ss.get("ia", False)))
    more_opts = core.more_constants(bundle)
    if "more" in view:
        problems += [f"more={m}: not a constant with a range" for m in view["more"] if m not in more_opts]
        ss["more"] = [m for m in view["more"] if m in more_opts]
    ss.setdefault("more", [])
    levers = {lv.name: lv for lv in core.levers(bundle, ss["more"], ss["base"])}
    moved = {}
    for name, val in view.get("lv", {}).items():
        lv = levers.get(name)
        why = f"lv={name}: no such lever" if lv is None else core.check_lever_value(lv, val)
        if why:
            problems.append(why if why.startswith("lv=") else "lv=" + why)
            continue
        pos = core.fit(lv, val)
        if pos != core.fit(lv, core.scenario_value(bundle, ss["base"], lv)):
            moved[name] = pos
    ss["lv"] = moved if "lv" in view else ss.get("lv", {})
    if "ch" in view:
        cols = set(chart_options(bundle))
        problems += [f"ch={c}: no such variable" for c in view["ch"] if c not in cols]
        ch = [c for c in dict.fromkeys(view["ch"]) if c in cols]
        if len(ch) > core.MAX_CHARTS:
            problems.append(f"ch: {len(ch)} charts; the first {core.MAX_CHARTS} are shown")
        ss["ch"] = ch[:core.MAX_CHARTS]
    if "grp" in view:
        ss["grp"] = view["grp"]
    if "ly" in view:
        years = [int(y) for y in bundle.years()]
        if view["ly"] in years:
            ss["ly"] = view["ly"]
        else:
            problems.append(f"ly={view['ly']}: not a year of the model ({years[0]}–{years[-1]})")
    return problems


def chart_options(bundle: core.Bundle) -> list[str]:
    """Every column a chart can show: variables and their elements, subrange sums."""
    out = []
    for n in core.chart_variables(bundle):
        els = bundle.model.elements(n)
        out += [n] if els == [()] else [f"{n}[{','.join(e)}]" for e in els]
    m = bundle.model.model
    for sub, (parent, _elems) in m.subranges.items():
        for name in ("industry_share", "value_added"):
            var = m.variables.get(name)
            if var is not None and var.dims == (parent,) and name in bundle.model.visible:
                out.append(f"{name}[{sub}]")
    return list(dict.fromkeys(out))


def current_view(ctx: Ctx) -> dict:
    ss = st.session_state
    return {"lang": ctx.lang, "page": ctx.page, "sc": ctx.selected, "ref": ctx.reference, "base": ctx.base,
            "lv": ctx.moved, "unc": ctx.unc, "more": ss.get("more", []), "ch": ss.get("ch"),
            "grp": ss.get("grp"), "ly": ss.get("ly"), "ia": ss.get("ia", False)}


def write_url(ctx: Ctx) -> None:
    """The URL holds the view, so a copied link reopens it."""
    try:
        q = state.encode(current_view(ctx))
        if dict(st.query_params) != q:
            st.query_params.from_dict(q)
    except Exception:  # noqa: BLE001 - the URL is a convenience; the view still works
        pass


def _add_library_entry(key: str) -> bool:
    from lxapp.library import Library, LibraryError
    try:
        entry = Library().get(int(key.split(":", 1)[1]))
    except (ValueError, LibraryError, OSError):
        return False
    if entry is None:
        return False
    st.session_state.setdefault("extra", {})[key] = {"label": entry["name"], "overrides": entry["overrides"]}
    return True


# ------------------------------------------------------------------ sidebar
def sidebar(bundle: core.Bundle) -> Ctx:
    ss = st.session_state
    sb = st.sidebar
    sb.toggle("English", key="w_en", value=ss.get("lang") == "en", on_change=_lang_changed)
    lang = ss.get("lang", "zh")
    pages = list(state.PAGES)
    page = sb.radio(t("page", lang), pages, format_func=lambda p: t(p, lang),
                    **bind("page", lang, lambda v: v if v in pages else pages[0]))
    if page != "export":
        ss["_view_page"] = page       # the page a link from the export page opens
    extra = ss.setdefault("extra", {})
    options = _scenario_options(bundle) + [k for k in extra if k not in bundle.scenarios]
    ctx_label = lambda s: core.scenario_label(bundle, s, lang, extra)  # noqa: E731
    base_opts = list(bundle.scenarios)
    base = sb.selectbox(t("base", lang), base_opts, format_func=ctx_label, help=t("base_help", lang),
                        **bind("base", lang, lambda v: v if v in base_opts else _default_base(bundle)))
    if ss.get("_base_prev") not in (None, base):     # another base: levers start from its values
        if ss.get("ref") == ss["_base_prev"]:
            ss["ref"] = base
        ss["sc"] = [base if s == ss["_base_prev"] else s for s in ss.get("sc", [])]
        ss["lv"] = {}
    ss["_base_prev"] = base
    if page == "levers":
        # the lever screen compares the current settings with their base only: the comparison's
        # widgets would change nothing there, and two fewer select widgets make the page lighter to
        # open (docs/benchmarks-app.md); their settings stay in the state and the URL
        ss["sc"] = [s for s in (ss.get("sc") or []) if s in options]
        selected = list(ss["sc"]) or [CURRENT]
        ss["ref"] = reference = ss.get("ref") if ss.get("ref") in [base] + selected else base
    else:
        selected = sb.multiselect(t("scenarios", lang), options, format_func=ctx_label,
                                  placeholder=t("choose", lang),
                                  **bind("sc", lang, lambda v: [s for s in (v or []) if s in options]))
        selected = list(selected) or [CURRENT]
        ref_opts = list(dict.fromkeys([base] + selected))
        reference = sb.selectbox(t("reference", lang), ref_opts, format_func=ctx_label,
                                 **bind("ref", lang, lambda v: v if v in ref_opts else base))
    unc = sb.toggle(t("uncertainty", lang), **bind("unc", lang, bool))
    more_opts = core.more_constants(bundle)
    sb.multiselect(t("more_levers", lang), more_opts, format_func=lambda n: core.var_label(bundle, n, lang),
                   placeholder=t("choose", lang),
                   **bind("more", lang, lambda v: [m for m in (v or []) if m in more_opts]))
    moved = dict(ss.get("lv", {}))
    lever_names = {lv.name for lv in core.levers(bundle, ss.get("more", []))}
    moved = {k: v for k, v in moved.items() if k in lever_names}
    ss["lv"] = moved
    if moved and page != "levers":    # on the lever screen the line is in its fragment, current after every move
        sb.caption(t("moved_levers", lang) + ": " + "; ".join(
            f"{core.var_label(bundle, k, lang)} = {v:g}" for k, v in moved.items()))
        if sb.button(t("reset", lang), key="reset_levers"):
            ss["lv"] = {}
            st.rerun()
    return Ctx(bundle, lang, page, selected, reference, base, moved, unc, extra=extra)


def _lang_changed() -> None:
    st.session_state["lang"] = "en" if st.session_state["w_en"] else "zh"


def copy_link(lang: str) -> None:
    """A button that copies the page's full address (as the browser has it at the moment of the
    click, so levers moved inside a fragment are in it) and shows it for copying by hand."""
    label, done = t("copy_link", lang), t("copied", lang)
    st.iframe(f"""
<div style="font-family: sans-serif; font-size: 13px">
<button id="b" style="padding:4px 10px; border:1px solid #bbb; border-radius:6px; background:#fff; cursor:pointer">
{label}</button> <span id="m" style="color:#229954"></span>
<input id="u" readonly style="width:100%; margin-top:4px; font-size:11px; border:1px solid #ddd" />
</div>
<script>
const u = document.getElementById('u');
function href() {{ try {{ return window.parent.location.href; }} catch (e) {{ return document.referrer; }} }}
u.value = href();
document.getElementById('b').onclick = async () => {{
  u.value = href(); u.select();
  try {{ await navigator.clipboard.writeText(u.value); }} catch (e) {{ document.execCommand('copy'); }}
  document.getElementById('m').textContent = '{done}';
}};
</script>""", height=70)  # fixed text of ours only: nothing from a user or the URL goes in


# ------------------------------------------------------------------ runs
def compute(ctx: Ctx, variables: tuple[str, ...] | None = None) -> None:
    """Runs every selected scenario and the base (each cached by its overrides; ``variables``:
    save only these) and, with uncertainty on, the engine's ensemble of the current settings."""
    b = ctx.bundle
    base_over = dict(b.scenarios[ctx.base].overrides) if ctx.base in b.scenarios else {}
    names = list(dict.fromkeys(ctx.selected + [ctx.reference, ctx.base]))
    ctx.overrides = {}
    for s in names:
        if s == CURRENT:
            ctx.overrides[s] = core.current_overrides(b, base_over, ctx.moved)
        elif s in b.scenarios:
            ctx.overrides[s] = dict(b.scenarios[s].overrides)
        elif s in ctx.extra:
            ctx.overrides[s] = dict(ctx.extra[s]["overrides"])
    runs = {s: cached_run(b.key, core.overrides_key(ov), variables) for s, ov in ctx.overrides.items()}
    ctx.df = core.add_aggregates(b, core.combine(runs))
    ctx.bands, ctx.prob = {}, None
    if ctx.unc and CURRENT in ctx.overrides:
        vars_ = tuple(core.headline(b))
        bands, prob, kind = cached_ensemble(b.key, core.overrides_key(ctx.overrides[CURRENT]), vars_, ENSEMBLE_N)
        ctx.bands = {CURRENT: _with_aggregates(b, bands)}
        ctx.prob, ctx.ensemble_kind = prob, kind


def lever_runs(ctx: Ctx, variables: tuple[str, ...] | None) -> dict[str, pd.DataFrame]:
    """The lever screen's two runs, the current settings and their base (each cached by its
    overrides, saving only ``variables``): scenario -> frame (index time, with subrange sums)."""
    b = ctx.bundle
    base_over = dict(b.scenarios[ctx.base].overrides) if ctx.base in b.scenarios else {}
    ctx.overrides = {CURRENT: core.current_overrides(b, base_over, ctx.moved), ctx.base: base_over}
    return {s: core.add_aggregates(b, cached_run(b.key, core.overrides_key(ov), variables))
            for s, ov in ctx.overrides.items()}


def _with_aggregates(b: core.Bundle, bands: dict) -> dict:
    m = b.model.model
    out = dict(bands)
    for sub, (_parent, elems) in m.subranges.items():
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
    _init_state(bundle)
    ctx = sidebar(bundle)
    st.title(t("title", ctx.lang))
    problems = st.session_state.pop("_url_problems", [])
    if problems:
        st.warning(t("bad_link", ctx.lang) + "\n\n" + "\n".join(f"- `{p[:200]}`" for p in problems[:20]))
    if bundle.load_error:
        st.warning(t("demo_warning", ctx.lang) + "\n\n" + bundle.load_error[:1500])
    if bundle.scenario_errors:
        with st.expander(t("scenario_errors", ctx.lang)):
            for e in bundle.scenario_errors:
                st.text(e)
    try:
        if ctx.page != "levers":      # the lever screen computes inside its fragment
            compute(ctx)
    except Exception as exc:  # noqa: BLE001 - a run that fails is a message, not a crash
        st.error(f"{t('run_failed', ctx.lang)} {type(exc).__name__}: {str(exc)[:500]}")
        return
    from lxapp import pages
    getattr(pages, f"page_{ctx.page}")(ctx)
    write_url(ctx)
    with st.sidebar:
        copy_link(ctx.lang)
    ms = (time.perf_counter() - t0) * 1000
    st.sidebar.caption(f"{t('timing', ctx.lang)}: {ms:.0f} ms · {bundle.model.model.name}")
