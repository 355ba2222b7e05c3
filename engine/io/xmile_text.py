"""Check an XMILE file and rewrite what published files hold that PySD's XMILE reader rejects.

* a bare ``&`` in documentation (Vensim's XMILE export writes them) is escaped;
* a stock's flow named with spaces (``Chg A UO Temp``) is written with underscores, and a time
  setting written ``TIME_STEP=10`` is the number;
* a graphical function written as an ``<aux>`` holding only a ``<gf>`` (no ``<eqn>``) becomes
  the standalone ``<gf name=...>`` the standard defines (PySD fails on it with IndexError);
* modules (Stella) are flattened into one model (engine/io/xmile_modules.py);
* a file that would import as an empty model is an error saying why: damaged XML, no ``<model>``,
  no variables, or several models that are not modules of the first; the message names a legacy
  (pre-standard) namespace when the file has one.
"""
from __future__ import annotations

import re

from lxml import etree

XMILE_NS = "http://docs.oasis-open.org/xmile/ns/XMILE/v1.0"
LEGACY_NS = "http://www.systemdynamics.org/XMILE"
_BARE_AMP = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)")


class XmileProblem(ValueError):
    """Why the file cannot be imported (one line), with a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _parse(data: bytes):
    """(root or None, the first error that is not an undeclared namespace prefix, or '').  Stella's
    files use prefixes such as isee: without declaring them; PySD's reader accepts that."""
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        return None, str(exc)
    errors = [e for e in parser.error_log if e.level_name not in ("WARNING", "NONE")
              and "Namespace prefix" not in e.message and "NAMESPACE" not in e.type_name
              and "xmlns" not in e.message]
    # a truncated file is an error; a mismatched closing tag inside a complete file is repaired
    # as PySD's reader (lxml recovering) repairs it (the SDXorg suite has such a file)
    fatal = [e for e in errors if "Premature end" in e.message or "Document is empty" in e.message
             or "Start tag expected" in e.message or "EndTag" in e.message or "not found" in e.message
             or "xmlParseEntityRef" in e.message]
    if fatal or (errors and root is None):
        e = (fatal or errors)[0]
        return root, f"{e.message.strip()}, line {e.line}, column {e.column}"
    return root, "" if root is not None else "no XML element"


def prepare(data: bytes) -> bytes:
    """The XMILE text PySD should read; XmileProblem if the file holds no model we can run."""
    root, data = _well_formed(data)
    ns = etree.QName(root).namespace or ""
    if etree.QName(root).localname.lower() != "xmile":
        raise XmileProblem(f"not an XMILE file (its root element is <{etree.QName(root).localname}>, "
                           f"not <xmile>)")
    if not ns:
        _check_plain(root)
        return data
    q = {"x": ns}
    why = (f" (legacy XMILE namespace {ns}, written before the XMILE 1.0 standard)"
           if ns.startswith("http://www.systemdynamics.org/XMILE") else "")
    from .xmile_modules import flatten_modules   # imports XmileProblem from here
    changed = flatten_modules(root, ns, q)
    variables, moved = _variables(root, ns, q, why)
    changed = _repair(root, variables, ns, q) or moved or changed
    if changed:
        return etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data


def _well_formed(data: bytes) -> tuple[etree._Element, bytes]:
    """The parsed root and the text it came from (bare ampersands escaped when that makes it parse)."""
    root, err = _parse(data)
    if err:
        fixed = _BARE_AMP.sub(b"&amp;", data)
        root, err2 = _parse(fixed)
        if err2:
            raise XmileProblem(f"not well-formed XML: {err}", "the file may be truncated or damaged")
        data = fixed
    return root, data


def _check_plain(root: etree._Element) -> None:
    """A file without a namespace (plain tag names) must still hold a model with variables."""
    root = etree.fromstring(etree.tostring(root))
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    models = root.findall("model")
    variables = models[0].find("variables") if models else None
    if not models or variables is None or not len(variables):
        raise XmileProblem("the file has no <model> with variables", "the file may be truncated or damaged")


def _variables(root: etree._Element, ns: str, q: dict[str, str], why: str) -> tuple[etree._Element, bool]:
    """The one model's <variables> (made from loose variables in legacy XMILE: then True)."""
    models = [m for m in root.findall("x:model", q) if m.find("x:variables", q) is not None] \
        or root.findall("x:model", q)
    if not models:
        raise XmileProblem("the file has no <model>: it holds no equations (only a header and time specs)" + why,
                           "export the model again; the tool that wrote the file lost its equations")
    named = [m for m in models if m.get("name")]
    if len(models) > 1 and named:
        raise XmileProblem(f"the file has {len(models)} models, {len(named)} of them modules "
                           f"({', '.join(m.get('name') or '?' for m in named[:4])}): XMILE modules are not "
                           f"supported", "flatten the modules into one model in Stella first")
    variables = models[0].find("x:variables", q)
    moved = False
    kinds = {"aux", "stock", "flow", "gf", "group", "module"}
    loose = [el for el in models[0] if isinstance(el.tag, str) and etree.QName(el).localname in kinds]
    if variables is None and loose:
        # legacy XMILE keeps the variables directly in <model>: put them in <variables>
        variables = etree.SubElement(models[0], f"{{{ns}}}variables")
        for el in loose:
            variables.append(el)
        moved = True
    if variables is None or not len(variables):
        raise XmileProblem("the <model> has no variables" + why, "the file may be truncated or damaged")
    modules = [m.get("name") or "?" for m in variables.findall("x:module", q)]
    if modules:
        raise XmileProblem(f"module {modules[0]!r}" + (f" (and {len(modules) - 1} more)" if len(modules) > 1 else "")
                           + ": XMILE modules are not supported", "flatten the modules into one model in Stella first")
    return variables, moved


def _repair_flows(variables: etree._Element, q: dict[str, str]) -> bool:
    """A stock's flow names as PySD reads them (the stock's equation is built from them); True if changed."""
    changed = False
    for stock in variables.findall("x:stock", q):
        for flow in stock.findall("x:inflow", q) + stock.findall("x:outflow", q):
            # a flow's name written with spaces (Vensim's export): XMILE names use underscores
            name = "_".join((flow.text or "").split())
            # a name that is no identifier (Stella writes "Flow_w/_division,_lists" bare): quoted,
            # as an equation would name it
            if not re.fullmatch(r'[^\W\d]\w*|".*"', name):
                name = '"' + name.replace('"', '\\"') + '"'
            if name != (flow.text or ""):
                flow.text = name
                changed = True
    return changed


# Stella's LOOKUP(table, x): the graphical function called by name, as XMILE writes it
_LOOKUP_CALL = re.compile(r'\bLOOKUP\s*\(\s*("[^"]+"|[^\W\d][\w.]*)\s*,', re.IGNORECASE)


def _repair_lookup_calls(variables: etree._Element, q: dict[str, str]) -> bool:
    """``LOOKUP(table, x)`` in equations as ``table(x)`` (the call's closing parenthesis stays); True if
    changed. Where ``table`` is an aux with both an equation and a graphical function (its value is
    the function of its equation), the function is copied to a lookup of its own, ``table_lookup``,
    which the call names."""
    key = lambda name: "_".join(name.strip('"').split()).lower()   # noqa: E731 - XMILE's name matching
    auxes = {key(el.get("name", "")): el for el in variables.findall("x:aux", q)}
    taken = {key(el.get("name", "")) for el in variables}
    renamed: dict[str, str] = {}

    def target(m: re.Match) -> str:
        name = m.group(1)
        aux = auxes.get(key(name))
        gf = aux.find("x:gf", q) if aux is not None else None
        if aux is None or gf is None or aux.find("x:eqn", q) is None:
            return name + "("
        if key(name) not in renamed:
            new = key(name) + "_lookup"
            while new in taken:
                new += "_"
            taken.add(new)
            copy = etree.SubElement(variables, f"{{{q['x']}}}gf", {**gf.attrib, "name": new})
            for child in gf:
                copy.append(etree.fromstring(etree.tostring(child)))
            renamed[key(name)] = new
        return renamed[key(name)] + "("

    changed = False
    for eqn in list(variables.iter(f"{{{q['x']}}}eqn")):
        text = eqn.text or ""
        new = _LOOKUP_CALL.sub(target, text)
        if new != text:
            eqn.text = new
            changed = True
    return changed


def _repair(root: etree._Element, variables: etree._Element, ns: str, q: dict[str, str]) -> bool:
    """Rewrite in place what other tools write differently from what PySD reads; True if anything changed."""
    changed = _repair_flows(variables, q)
    changed = _repair_lookup_calls(variables, q) or changed
    for spec in root.findall("x:sim_specs/*", q):
        # Vensim's export writes <dt>TIME_STEP=0.125</dt>: the number is the setting
        m = re.fullmatch(r"\s*[A-Za-z_ ]+=\s*([-+0-9.eE]+)\s*", spec.text or "")
        if m:
            spec.text = m.group(1)
            changed = True
    for aux in variables.findall("x:aux", q):
        gf = aux.find("x:gf", q)
        if gf is None or aux.find("x:eqn", q) is not None or aux.find("x:element", q) is not None:
            continue
        # a lookup on its own: <gf name="..."> with the points inside
        aux.tag = f"{{{ns}}}gf"
        for child in list(gf):
            aux.append(child)
        for k, v in gf.attrib.items():
            aux.set(k, v)
        aux.remove(gf)
        changed = True
    return changed
