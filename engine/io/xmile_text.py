"""Check an XMILE file and rewrite what published files hold that PySD's XMILE reader rejects.

* a bare ``&`` in documentation (Vensim's XMILE export writes them) is escaped;
* a stock's flow named with spaces (``Chg A UO Temp``) is written with underscores, and a time
  setting written ``TIME_STEP=10`` is the number;
* a graphical function written as an ``<aux>`` holding only a ``<gf>`` (no ``<eqn>``) becomes
  the standalone ``<gf name=...>`` the standard defines (PySD fails on it with IndexError);
* a file that would import as an empty model is an error saying why: legacy (pre-standard)
  XMILE namespace, no ``<model>``, no variables, or several models (Stella modules).
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
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    return etree.fromstring(data, parser)


def prepare(data: bytes) -> bytes:
    """The XMILE text PySD should read; XmileProblem if the file holds no model we can run."""
    try:
        root = _parse(data)
    except etree.XMLSyntaxError as exc:
        fixed = _BARE_AMP.sub(b"&amp;", data)
        try:
            root = _parse(fixed)
        except etree.XMLSyntaxError:
            raise XmileProblem(f"not well-formed XML: {exc}", "the file may be truncated or damaged") from None
        data = fixed
    ns = etree.QName(root).namespace or ""
    if ns == LEGACY_NS or ns.startswith("http://www.systemdynamics.org/XMILE"):
        raise XmileProblem(f"legacy XMILE (namespace {ns}), written before the XMILE 1.0 standard",
                           "save the model again from Stella or Vensim as XMILE 1.0")
    if ns != XMILE_NS:
        raise XmileProblem(f"not an XMILE 1.0 file (root <{etree.QName(root).localname}> in namespace "
                           f"'{ns or 'none'}', expected {XMILE_NS})")
    q = {"x": XMILE_NS}
    models = root.findall("x:model", q)
    if not models:
        raise XmileProblem("the file has no <model>: it holds no equations (only a header and time specs)",
                           "export the model again; the tool that wrote the file lost its equations")
    named = [m for m in models if m.get("name")]
    if named:
        raise XmileProblem(f"the file has {len(models)} models, {len(named)} of them modules "
                           f"({', '.join(m.get('name') for m in named[:4])}): XMILE modules are not supported",
                           "flatten the modules into one model in Stella first")
    variables = models[0].find("x:variables", q)
    if variables is None or not len(variables):
        raise XmileProblem("the <model> has no variables", "the file may be truncated or damaged")
    changed = False
    for stock in variables.findall("x:stock", q):
        for flow in stock.findall("x:inflow", q) + stock.findall("x:outflow", q):
            # a flow's name written with spaces (Vensim's export): XMILE names use underscores
            name = "_".join((flow.text or "").split())
            if name != (flow.text or ""):
                flow.text = name
                changed = True
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
        aux.tag = f"{{{XMILE_NS}}}gf"
        for child in list(gf):
            aux.append(child)
        for k, v in gf.attrib.items():
            aux.set(k, v)
        aux.remove(gf)
        changed = True
    if changed:
        return etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data
