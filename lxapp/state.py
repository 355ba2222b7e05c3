"""The view in the URL: scenarios, reference, base, levers, language, page, uncertainty.

encode()/decode() are plain functions of dicts, so the round trip is testable without Streamlit.
"""
from __future__ import annotations

PAGES = ("overview", "compare", "levers", "scorecard", "calibration", "model", "library", "export")


def encode(view: dict) -> dict[str, str]:
    """view: lang, page, sc (list), ref, base, lv (dict name -> value), unc (bool), more (list)."""
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
    if view.get("more"):
        q["more"] = ",".join(view["more"])
    return q


def decode(q: dict) -> dict:
    """The inverse of encode; anything malformed is dropped, never an error."""
    view: dict = {}
    lang = q.get("lang")
    if lang in ("zh", "en"):
        view["lang"] = lang
    if q.get("page") in PAGES:
        view["page"] = q["page"]
    if q.get("sc"):
        view["sc"] = [s for s in str(q["sc"]).split(",") if s]
    for k in ("ref", "base"):
        if q.get(k):
            view[k] = str(q[k])
    if q.get("lv"):
        lv = {}
        for part in str(q["lv"]).split(";"):
            name, _, val = part.partition(":")
            try:
                lv[name] = float(val)
            except ValueError:
                continue
        view["lv"] = lv
    if q.get("unc") in ("1", "true"):
        view["unc"] = True
    if q.get("more"):
        view["more"] = [s for s in str(q["more"]).split(",") if s]
    return view


def _num(v: float) -> str:
    return f"{float(v):.6g}"
