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
* ``SINTEG(rate, init, lo, hi, ...)`` becomes an INTEG whose rate keeps the stock within [lo, hi];
* old-style lookups written as a plain list of points, ``x((0,1),(1,2))``, are given
  Vensim's range header ``x([(0,1)-(1,2)],(0,1),(1,2))``, which PySD's lookup grammar needs.
"""
from __future__ import annotations

import itertools
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


def split_entries(text: str) -> list[str]:
    """The text cut at each entry's closing '|' ("|".join gives it back): a '|' or '~' inside a
    quoted name ("Aux with $peC!@| characters") belongs to the name; in units and documentation
    (after an entry's first '~') quotes are not tracked (documentation may hold a lone '"')."""
    out, start, in_quote, in_eq = [], 0, False, True
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if in_eq and c == '"':
            in_quote = not in_quote
        elif in_eq and in_quote and c == "\\":
            i += 1
        elif not in_quote and c == "~":
            in_eq = False
        elif not in_quote and c == "|":
            out.append(text[start:i])
            start, in_eq = i + 1, True
        i += 1
    out.append(text[start:])
    return out


def split_equation(entry: str) -> tuple[str, str, str]:
    """(equation, '~', the rest) at the entry's first '~' outside quotes; (entry, '', '') without one."""
    in_quote = False
    i = 0
    while i < len(entry):
        c = entry[i]
        if c == '"':
            in_quote = not in_quote
        elif in_quote and c == "\\":
            i += 1
        elif c == "~" and not in_quote:
            return entry[:i], "~", entry[i + 1:]
        i += 1
    return entry, "", ""


_BARE_NAME = re.compile(r"^\s*([A-Za-z][^=:(){}|~*<>!,;\"]*?|\"[^\"]*\")(\s*\[[^\]]*\])?\s*$", re.DOTALL)


def _bare_data(text: str) -> str:
    """An entry that is a name alone (``dummy data ~ Units ~ doc |``) is a data variable whose values
    Vensim reads from a data file at run time: written ``name :=`` as PySD's grammar wants it (the
    importer then reads it from the data files given, or says which variable needs one)."""
    entries = split_entries(text)
    for k, entry in enumerate(entries):
        eq, tilde, rest = split_equation(entry)
        if not tilde or ":MACRO:" in eq or ":END OF MACRO:" in eq:
            continue
        m = _BARE_NAME.match(re.sub(r"^\s*\{[^{}]*\}", "", eq) if k == 0 else eq)
        if m and rest.count("~") >= 1 and m.group(1).strip():
            entries[k] = eq.rstrip() + " :=\n\t" + tilde + rest
    return "|".join(entries)


_LIST_MAPPING = re.compile(r"(->\s*)\(\s*[^():]+:[^()]*\)\s*,?")


def _list_mappings(text: str) -> str:
    """Drop subscript mappings written as element lists, ``r: a, b -> (s: s1, s2)``: PySD adds the
    listed names to the range's own elements (wrong elements, wrong sizes).  Without the mapping an
    equation that needs it is reported, never computed with a wrong correspondence."""
    entries = split_entries(text)
    for k, entry in enumerate(entries):
        eq, tilde, rest = split_equation(entry)
        if "->" in eq and "(" in eq and ":" in eq:
            new = _LIST_MAPPING.sub(r"\1", eq)
            new = re.sub(r"->\s*,?\s*$", "", new.rstrip())
            new = re.sub(r",\s*$", "", new.rstrip())
            entries[k] = new + "\n\t" + tilde + rest
    return "|".join(entries)


_LIST_MAPPING_PARTS = re.compile(r"^\s*([^:]+?)\s*:(.*?)->\s*\(\s*([^():]+?)\s*:([^()]*)\)", re.S)


def list_mappings(text: str) -> dict[str, tuple[str, list[str]]]:
    """Subscript mappings written as element lists, ``r: a, b -> (s: s1, s2)``, from a model's text:
    range name -> (the range it maps to, the names listed, one per element of r; each an element or a
    subrange of the other range).  A reference ``x[r]`` in an equation over ``s`` reads, at an element
    e of s, the element of r whose listed name is e or a subrange holding e (Vensim's rule)."""
    text = re.sub(r"\\\r?\n[ \t]*", " ", text.partition(SKETCH_MARK)[0])
    out: dict[str, tuple[str, list[str]]] = {}
    for entry in split_entries(text):
        eq = split_equation(entry)[0]
        if "->" not in eq or "(" not in eq:
            continue
        m = _LIST_MAPPING_PARTS.match(re.sub(r"\{[^{}]*\}", " ", eq))
        if m:
            listed = [x.strip() for x in m.group(4).split(",") if x.strip()]
            out[m.group(1).strip()] = (m.group(3).strip(), listed)
    return out


def strip_comments(text: str) -> str:
    """Remove ``{...}`` comments from the equations (the part of each entry before its first
    ``~``); the leading ``{UTF-8}`` marker and the documentation are kept."""
    head = re.match(r"\s*\{[^{}\n]*\}", text)
    cut = head.end() if head else 0
    entries = split_entries(text[cut:])
    for k, entry in enumerate(entries):
        eq, tilde, rest = split_equation(entry)
        if "{" in eq:
            entries[k] = _strip_braces(eq) + tilde + rest
    return text[:cut] + "|".join(entries)


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR = rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)"
_LOOKUP_HEAD = r"(\s*[^=~|\[\]()]+?(?:\[[^\]]*\])?\s*)"
_PAIRS = re.compile(rf"{_LOOKUP_HEAD}\(\s*((?:{_PAIR}\s*,\s*)*{_PAIR})\s*\)(\s*)")
_FLAT = re.compile(rf"{_LOOKUP_HEAD}\(\s*((?:{_NUM}\s*,\s*)+{_NUM})\s*\)(\s*)")


def _lookup_text(head: str, xs: list[str], ys: list[str], tail: str) -> str:
    fx, fy = [float(x) for x in xs], [float(y) for y in ys]
    rng = f"[({min(fx):g},{min(fy):g})-({max(fx):g},{max(fy):g})]"
    return f"{head}({rng},{','.join(f'({x},{y})' for x, y in zip(xs, ys, strict=False))}){tail}"


def _old_style_lookup(eq: str) -> str:
    """One equation: a lookup without Vensim's range header, which PySD's lookup grammar needs:
    ``name((x1,y1),(x2,y2),...)`` and DYNAMO's flat ``name(x1,...,xn,y1,...,yn)`` (the x values
    first, then the y values, as Vensim's dyn2ven writes them) become
    ``name([(xmin,ymin)-(xmax,ymax)],(x1,y1),...)``."""
    m = _PAIRS.fullmatch(eq)
    if m:
        pts = re.findall(_PAIR, m.group(2))
        return _lookup_text(m.group(1), [x for x, _ in pts], [y for _, y in pts], m.group(m.lastindex or 0))
    m = _FLAT.fullmatch(eq)
    if m:
        nums = [v.strip() for v in m.group(2).split(",")]
        if len(nums) % 2 or len(nums) < 4:
            return eq
        k = len(nums) // 2
        xs = [float(v) for v in nums[:k]]
        if any(b < a for a, b in itertools.pairwise(xs)):
            return eq       # not x values then y values
        return _lookup_text(m.group(1), nums[:k], nums[k:], m.group(m.lastindex or 0))
    return eq


def _old_style_lookups(text: str) -> str:
    entries = split_entries(text)
    for k, entry in enumerate(entries):
        eq, tilde, rest = split_equation(entry)
        if tilde and "(" in eq and "=" not in eq and ":" not in eq:
            new = _old_style_lookup(eq)
            if new is not eq:
                entries[k] = new + tilde + rest
    return "|".join(entries)


def _split_args(text: str, start: int) -> tuple[list[str], int]:
    """Arguments of the call whose '(' is at ``start``; returns (args, index after ')')."""
    depth, args, cur = 0, [], start + 1
    in_quote = False
    for i in range(start, len(text)):
        c = text[i]
        if c == '"':
            in_quote = not in_quote
        elif in_quote:
            continue
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
            if depth == 0:
                args.append(text[cur:i])
                return args, i + 1
        elif c == "," and depth == 1:
            args.append(text[cur:i])
            cur = i + 1
    raise ValueError("unbalanced parentheses")


_SINTEG = re.compile(r"(^|\|)(\s*)([^=~|]+?)(\s*=\s*)SINTEG\s*(?=\()", re.IGNORECASE | re.MULTILINE)


def _sinteg(text: str) -> str:
    """``x = SINTEG(rate, init, lo, hi, :NA:, :NA:, :NA:)`` -> an INTEG whose rate is limited so that
    x stays within [lo, hi] (:NA: = no bound).  Our reading of Vensim's bounded stock; the three
    last arguments must be :NA: (anything else is left for PySD to refuse)."""
    out, pos = [], 0
    for m in _SINTEG.finditer(text):
        try:
            args, end = _split_args(text, m.end())
        except ValueError:
            continue
        args = [a.strip() for a in args]
        if len(args) < 2 or any(a.upper() != ":NA:" for a in args[4:]):
            continue
        name = re.sub(r"\[.*\]", "", m.group(3)).strip()
        subs = re.search(r"\[.*\]", m.group(3))
        ref = name + (subs.group(0) if subs else "")
        rate = args[0]
        lo = args[2] if len(args) > 2 else ":NA:"
        hi = args[3] if len(args) > 3 else ":NA:"
        if lo.upper() != ":NA:":
            rate = f"MAX({rate}, (({lo}) - {ref}) / TIME STEP)"
        if hi.upper() != ":NA:":
            rate = f"MIN({rate}, (({hi}) - {ref}) / TIME STEP)"
        out.append(text[pos:m.start()] + m.group(1) + m.group(2) + m.group(3) + m.group(4)
                   + f"INTEG({rate}, {args[1]})")
        pos = end
    out.append(text[pos:])
    return "".join(out)


_MACRO_HEAD = re.compile(r":MACRO:\s*([^(]+?)\s*\(([^)]*)\)")


def _macro_outputs(model: str, macros: list[str]) -> tuple[str, list[str]]:
    """Macros with output arguments, ``M(a, b : o1, o2)``.  PySD reads neither the call nor the
    outputs, so a call ``M(x, y : r2, mae)`` becomes ``M(x, y)`` and each output name ``r2`` a
    variable ``r2 = M OUT R2(x, y)`` of a copy of the macro whose result is its R2.  The copies
    compute what the first instance computes (macros are deterministic unless they draw RANDOM
    numbers, which none with outputs in the published models does)."""
    specs = {}
    for text in macros:
        m = _MACRO_HEAD.match(text)
        if m and ":" in m.group(2):
            params, outs = m.group(2).split(":", 1)
            specs[m.group(1).strip()] = ([p.strip() for p in params.split(",")],
                                         [o.strip() for o in outs.split(",") if o.strip()], text)
    if not specs:
        return model, macros
    copies: dict[tuple[str, str], str] = {}
    extra: list[str] = []
    for name, (_params, outs, _body) in specs.items():
        pat = re.compile(r"(?<![\w\s])\s*" + r"\s+".join(map(re.escape, name.split())) + r"\s*(?=\()", re.IGNORECASE)
        pos, out = 0, []
        for m in pat.finditer(model):
            if m.start() < pos:
                continue
            try:
                args, end = _split_args(model, m.end())
            except ValueError:
                continue
            joined = ",".join(args)
            if ":" not in joined:
                continue
            ins, outs_given = joined.split(":", 1)
            out.append(model[pos:m.end()] + f"({ins})")
            pos = end
            for given, formal in zip((o.strip() for o in outs_given.split(",")), outs, strict=False):
                if not given:
                    continue
                copy = f"{name} OUT {formal}"
                copies[(name, formal)] = copy
                extra.append(f"{given} = {copy}({ins})\n\t~\t\n\t~\toutput {formal} of macro {name}\n\t|")
        out.append(model[pos:])
        model = "".join(out)
    new_macros = []
    for text in macros:
        m = _MACRO_HEAD.match(text)
        if m and m.group(1).strip() in specs:
            name = m.group(1).strip()
            params = specs[name][0]
            text = f":MACRO: {name}({','.join(params)})" + text[m.end():]
            for (mname, formal), copy in copies.items():
                if mname != name:
                    continue
                body = text[m.end() - len(m.group(0)):]
                body = f":MACRO: {copy}({','.join(params)})" + text[len(f':MACRO: {name}({",".join(params)})'):]
                body = body.replace(":END OF MACRO:", f"{copy} = {formal}\n\t~\t\n\t~\t\n\t|\n:END OF MACRO:")
                new_macros.append(body)
        new_macros.append(text)
    return model.rstrip() + ("\n\n" + "\n\n".join(extra) + "\n" if extra else ""), new_macros


def preprocess(text: str) -> str:
    """The model text (sketch included, untouched) rewritten for PySD's translator."""
    model, sep, sketch = text.partition(SKETCH_MARK)
    model = re.sub(r"\\\r?\n[ \t]*", " ", model)   # line continuations (as PySD's own clean-up)
    model = strip_comments(model)
    model = _CLOCK_DOLLAR.sub(lambda m: m.group(1), model)
    macros = _MACRO.findall(model)
    if macros:
        rest, macros = _macro_outputs(_MACRO.sub("\n", model), macros)
        head = re.match(r"\s*\{[^{}\n]*\}", rest)
        cut = head.end() if head else 0
        model = rest[:cut] + "\n" + "\n".join(macros) + "\n" + rest[cut:]
    model = _old_style_lookups(model)
    model = _bare_data(model)
    model = _list_mappings(model)
    if "SINTEG" in model.upper():
        model = _sinteg(model)
    return model + sep + sketch
