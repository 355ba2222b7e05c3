"""The view in the URL: every setting that defines what a person sees (page, language,
scenarios, reference, base, levers, charts, sector grouping, LMDI year, uncertainty).

encode()/decode() are plain functions of dicts, so the round trip is testable without Streamlit.
decode() never raises: whatever is malformed is left out and named in its list of problems
(the app shows them as one message), and checks against the model are the app's (lxapp.ui).
"""
from __future__ import annotations

import math

PAGES = ("overview", "levers", "compare", "scorecard", "calibration", "model", "library", "export")
MAX_VALUE_CHARS = 2000      # a query value longer than this is refused (a link is not a data channel)


def encode(view: dict) -> dict[str, str]:
    """view: lang, page, sc (list), ref, base, lv (dict name -> value), unc (bool), more (list),
    ch (list of chart columns), grp (3 or 7: sector grouping), ly (LMDI year), ia (bool: the lever
    screen's charts interactive)."""
    q = {"lang": view.get("lang", "zh"), "page": view.get("page", PAGES[0])}
    if view.get("sc"):
        q["sc"] = ",".join(view["sc"])
    for k in ("ref", "base"):
        if view.get(k):
            q[k] = view[k]
    if view.get("lv"):
        q["lv"] = ";".join(f"{k}:{_num(v)}" for k, v in sorted(view["lv"].items()))
    if view.get("unc"):
        q["unc"] = "1"
    if view.get("ia"):
        q["ia"] = "1"
    if view.get("more"):
        q["more"] = ",".join(view["more"])
    if view.get("ch") is not None:
        q["ch"] = ";".join(view["ch"]) or "-"      # "-": no charts, not the default ones
    if view.get("grp") in (3, 7):
        q["grp"] = str(view["grp"])
    if view.get("ly") is not None:
        q["ly"] = str(int(view["ly"]))
    return q


def decode(q: dict) -> tuple[dict, list[str]]:
    """The inverse of encode: (view, problems). Anything malformed is dropped and named."""
    view: dict = {}
    problems: list[str] = []
    for k, v in q.items():
        if v is not None and len(str(v)) > MAX_VALUE_CHARS:
            problems.append(f"{k}: longer than {MAX_VALUE_CHARS} characters")
    q = {k: str(v) for k, v in q.items() if v is not None and len(str(v)) <= MAX_VALUE_CHARS}
    if "lang" in q:
        if q["lang"] in ("zh", "en"):
            view["lang"] = q["lang"]
        else:
            problems.append(f"lang={q['lang']}: not zh or en")
    if "page" in q:
        if q["page"] in PAGES:
            view["page"] = q["page"]
        else:
            problems.append(f"page={q['page']}: not one of {', '.join(PAGES)}")
    if q.get("sc"):
        view["sc"] = [s for s in q["sc"].split(",") if s]
    for k in ("ref", "base"):
        if q.get(k):
            view[k] = q[k]
    if q.get("lv"):
        view["lv"] = _levers(q["lv"], problems)
    _rest(q, view, problems)
    return view, problems


def _levers(text: str, problems: list[str]) -> dict[str, float]:
    """"name:value;..." -> {name: value}; NaN, infinities and non-numbers are problems."""
    lv = {}
    for part in text.split(";"):
        if not part:
            continue
        name, sep, val = part.partition(":")
        try:
            x = float(val)
        except ValueError:
            problems.append(f"lv={part}: {'no value' if not sep else repr(val) + ' is not a number'}")
            continue
        if not math.isfinite(x):
            problems.append(f"lv={part}: {val!r} is not a finite number")
            continue
        lv[name] = x
    return lv


def _rest(q: dict, view: dict, problems: list[str]) -> None:
    for flag in ("unc", "ia"):
        if flag in q:
            view[flag] = q[flag] in ("1", "true")
    if q.get("more"):
        view["more"] = [s for s in q["more"].split(",") if s]
    if "ch" in q:
        view["ch"] = [] if q["ch"] in ("", "-") else [c for c in q["ch"].split(";") if c]
    if "grp" in q:
        if q["grp"] in ("3", "7"):
            view["grp"] = int(q["grp"])
        else:
            problems.append(f"grp={q['grp']}: 3 (three sectors) or 7 (every sector)")
    if "ly" in q:
        try:
            view["ly"] = int(q["ly"])
        except ValueError:
            problems.append(f"ly={q['ly']}: not a year")


def _num(v: float) -> str:
    return f"{float(v):.10g}"
