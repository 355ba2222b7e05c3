"""Flatten XMILE modules (Stella) into the one model PySD's XMILE reader reads.

A ``<module name="growth">`` in a model instantiates the file's ``<model name="growth">``: each of its
variables becomes ``growth__NAME`` in the flat model (``growth__level``), a reference ``growth.level``
in the model holding the module reads that variable, and an input (``access="input"``) connected by
``<connect to="growth.rate" from="rate"/>`` takes the source's value (``from`` names a variable of the
model holding the module, with a leading dot one of the top model, or another module's variable,
``other.out``); an input left unconnected keeps its own equation. Modules nest. Refused with a
one-line error naming the module: a model in another file (``resource``) or not in the file, and a
model that instantiates itself.
"""
from __future__ import annotations

import copy
import re

from lxml import etree

from .xmile_text import XmileProblem

# a name, possibly quoted, possibly dotted (module.variable)
_TOKEN = re.compile(r'(?:"[^"]*"|[A-Za-z_]\w*)(?:\.(?:"[^"]*"|[A-Za-z_]\w*))*')
_KINDS = ("aux", "stock", "flow", "gf")


def _norm(name: str) -> str:
    """XMILE's name equivalence: case, spaces, underscores and quotes do not matter."""
    return "_".join(name.strip().strip('"').replace("_", " ").split()).lower()


def _dotted(text: str) -> str:
    return ".".join(_norm(p) for p in re.findall(r'"[^"]*"|[^.]+', text))


def _flat(path: list[str], name: str) -> str:
    return ".".join(["_".join(p.split()) for p in path] + ["_".join(name.strip().strip('"').split())])


def _quoted(flat: str) -> str:
    """A flat name as equations write it (quoted when it holds a module's dot)."""
    return f'"{flat}"' if "." in flat else flat


class Flattener:
    """Flattens the modules of one XMILE document (``q`` maps the prefix ``x`` to its namespace)."""

    def __init__(self, root, ns: str, q: dict) -> None:
        self.ns, self.q = ns, q
        self.models = {_norm(m.get("name")): m for m in root.findall("x:model", q) if m.get("name")}
        self.pending: list[tuple] = []   # (input element, source text, scope of the holding model, module)

    def rename(self, text: str, scope: dict[str, str]) -> str:
        """Equation text with each name of the scope written as its flat name."""
        def sub(m: re.Match) -> str:
            flat = scope.get(_dotted(m.group(0)))
            return m.group(0) if flat is None else _quoted(flat)
        return _TOKEN.sub(sub, text)

    def flatten(self, model, path: list[str], seen: tuple[str, ...]) -> tuple[list, dict[str, str]]:
        """(flat elements of ``model`` and of its modules, normalised (dotted) name -> flat name)."""
        vs = model.find("x:variables", self.q)
        elements = [el for el in (vs if vs is not None else []) if isinstance(el.tag, str)]
        scope = {_norm(el.get("name")): _flat(path, el.get("name")) for el in elements
                 if etree.QName(el).localname in _KINDS and el.get("name")}
        inner_elements: list = []
        for mod in (el for el in elements if etree.QName(el).localname == "module"):
            name = mod.get("name") or "?"
            key = _norm(name)
            if mod.get("resource"):
                raise XmileProblem(f"module {name!r}: its model is in another file ({mod.get('resource')}), "
                                   "which is not read", "put the module's model in this file")
            if key not in self.models:
                raise XmileProblem(f"module {name!r}: the file has no <model name={name!r}>")
            if key in seen:
                raise XmileProblem(f"module {name!r} instantiates itself")
            elems, inner_scope = self.flatten(self.models[key], [*path, name], (*seen, key))
            scope.update({f"{key}.{k}": v for k, v in inner_scope.items()})
            by_name = {el.get("name"): el for el in elems}
            for c in mod.findall("x:connect", self.q):
                to = _dotted(c.get("to") or "")
                to = to.split(".", 1)[1] if to.startswith(key + ".") else to
                target = by_name.get(inner_scope.get(to, ""))
                if target is None or target.get("access") != "input":
                    raise XmileProblem(f"module {name!r}: {c.get('to')!r} is not an input of its model")
                self.pending.append((target, c.get("from") or "", scope, name))
            inner_elements += elems
        own = []
        for el in elements:
            if etree.QName(el).localname == "module":
                continue
            new = copy.deepcopy(el)
            if new.get("name"):
                new.set("name", _flat(path, new.get("name")))
            for child in new.iter():
                if child is not new and isinstance(child.tag, str) and child.text \
                        and etree.QName(child).localname in ("eqn", "inflow", "outflow"):
                    child.text = self.rename(child.text, scope)
            own.append(new)
        return own + inner_elements, scope

    def connect(self, top_scope: dict[str, str]) -> None:
        """Give each connected input its source (after every model is flat)."""
        for el, source, scope, module in self.pending:
            src = top_scope.get(_dotted(source[1:])) if source.startswith(".") else scope.get(_dotted(source))
            if src is None:
                raise XmileProblem(f"module {module!r}: an input is connected to {source!r}, which is not defined")
            for child in list(el):
                if isinstance(child.tag, str) and etree.QName(child).localname in ("eqn", "gf"):
                    el.remove(child)
            eqn = etree.Element(f"{{{self.ns}}}eqn" if self.ns else "eqn")
            eqn.text = _quoted(src)
            el.insert(0, eqn)
            el.attrib.pop("access", None)


def flatten_modules(root, ns: str, q: dict) -> bool:
    """Replace the top model's modules by their variables (in place); False when it has none."""
    top = next((m for m in root.findall("x:model", q) if not m.get("name")), None)
    variables = top.find("x:variables", q) if top is not None else None
    if variables is None or variables.find("x:module", q) is None:
        return False
    f = Flattener(root, ns, q)
    elements, scope = f.flatten(top, [], ())
    f.connect(scope)
    for child in list(variables):
        variables.remove(child)
    for el in elements:
        variables.append(el)
    for m in root.findall("x:model", q):
        if m.get("name"):
            root.remove(m)
    return True
