"""Rewrite Vensim .mdl text that Vensim accepts into text PySD's translator accepts.

PySD's grammar falls short of Vensim's on a few constructs that published models use
(measured on ../shared/real-models, see docs/vensim.md).  Rather than writing a grammar of our
own, the importer rewrites the text before PySD reads it; each rewrite keeps the model's
meaning:

* inline ``{comments}`` inside equations are removed (Vensim ignores them);
* ``TIME STEP$``-style keywords (Vensim's way to name the clock inside a macro) become the
  plain names, which the importer maps to the clock anyway;
* macro definitions are moved in front of the model: PySD's section grammar reads a model
  part followed by two or more macros as one part (its ``.+(?=:MACRO:)`` is greedy);
* old-style lookups written as a plain list of points, ``x((0,1),(1,2))``, are given
  Vensim's range header ``x([(0,1)-(1,2)],(0,1),(1,2))``, which PySD's lookup grammar needs.
"""
from __future__ import annotations

import re

SKETCH_MARK = "\\\\\\---///"

_CLOCK_DOLLAR = re.compile(r"\b(INITIAL\s+TIME|FINAL\s+TIME|TIME\s+STEP|SAVEPER|TIME)\s*\$", re.IGNORECASE)
_MACRO = re.compile(r":MACRO:.*?:END OF MACRO:", re.DOTALL)


def _strip_braces(eq: str) -> str:
    out: list[str] = []
    i, n = 0, len(eq)
    in_quote = False
    while i < n:
        c = eq[i]
        if c == '"':
            in_quote = not in_quote
            out.append(c)
        elif c == "\\" and in_quote and i + 1 < n:
            out.append(eq[i:i + 2])
            i += 1
        elif c == "{" and not in_quote:
            j = eq.find("}", i + 1)
            if j < 0:
                out.append(eq[i:])
                break
            out.append(" ")  # a comment counts as a space (keeps names apart)
            i = j
        else:
            out.append(c)
        i += 1
    return "".join(out)


def strip_comments(text: str) -> str:
    """Remove ``{...}`` comments from the equations (the part of each entry before its first
    ``~``); the leading ``{UTF-8}`` marker and the documentation are kept."""
    head = re.match(r"\s*\{[^{}\n]*\}", text)
    cut = head.end() if head else 0
    entries = text[cut:].split("|")
    for k, entry in enumerate(entries):
        eq, tilde, rest = entry.partition("~")
        if "{" in eq:
            entries[k] = _strip_braces(eq) + tilde + rest
    return text[:cut] + "|".join(entries)


def _old_style_lookups(text: str) -> str:
    """``name((x1,y1),(x2,y2),...)`` -> ``name([(xmin,ymin)-(xmax,ymax)],(x1,y1),...)``."""
    num = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
    pair = rf"\(\s*({num})\s*,\s*({num})\s*\)"
    pattern = re.compile(rf"(^|\|)(\s*[^=~|\[\]()]+?(?:\[[^\]]*\])?\s*)\(\s*((?:{pair}\s*,\s*)*{pair})\s*\)(\s*~)",
                         re.MULTILINE)

    def fix(m: re.Match) -> str:
        pts = re.findall(pair, m.group(3))
        xs = [float(x) for x, _ in pts]
        ys = [float(y) for _, y in pts]
        rng = f"[({min(xs):g},{min(ys):g})-({max(xs):g},{max(ys):g})]"
        return f"{m.group(1)}{m.group(2)}({rng},{m.group(3)}){m.group(m.lastindex)}"

    return pattern.sub(fix, text)


def preprocess(text: str) -> str:
    """The model text (sketch included, untouched) rewritten for PySD's translator."""
    model, sep, sketch = text.partition(SKETCH_MARK)
    model = strip_comments(model)
    model = _CLOCK_DOLLAR.sub(lambda m: m.group(1), model)
    macros = _MACRO.findall(model)
    if macros:
        rest = _MACRO.sub("\n", model)
        head = re.match(r"\s*\{[^{}\n]*\}", rest)
        cut = head.end() if head else 0
        model = rest[:cut] + "\n" + "\n".join(macros) + "\n" + rest[cut:]
    model = _old_style_lookups(model)
    return model + sep + sketch
