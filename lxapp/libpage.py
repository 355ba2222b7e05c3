"""The scenario library page: save, list, load, compare, delete (confirmed, undoable),
restore, export and upload."""
from __future__ import annotations

import datetime as _dt

import streamlit as st

from lxapp import core
from lxapp.i18n import t
from lxapp.library import MAX_AUTHOR, MAX_NAME, MAX_NOTE, LibraryError


def _library():
    from lxapp.library import Library
    return Library()


def render(ctx) -> None:
    st.header(t("library", ctx.lang))
    ss = st.session_state
    try:
        lib = _library()
        entries = lib.list()
        deleted = lib.list(deleted=True)
    except (LibraryError, OSError) as exc:   # locked > 30 s, damaged, read-only disk: say so, keep going
        st.error(t("db_error", ctx.lang) + f" {exc}")
        return
    for kind, msg in ss.pop("_lib_msgs", []):
        getattr(st, kind)(msg)
    if lib.damaged:
        st.warning(t("damaged_rows", ctx.lang) + " " + ", ".join(f"#{i}" for i in lib.damaged))
    undo = ss.get("_lib_undo")
    if undo is not None:
        c = st.columns([4, 1])
        c[0].info(f"{t('deleted', ctx.lang)} {undo['name']}")
        if c[1].button(t("undo", ctx.lang), key="lib_undo"):
            _act(lambda: lib.restore(undo["id"]), ctx, "success", f"{t('restored', ctx.lang)} {undo['name']}")
            ss.pop("_lib_undo", None)
            st.rerun()
    entries = _save_form(ctx, lib) or entries
    st.subheader(t("saved_list", ctx.lang))
    if not entries:
        st.info(t("none_saved", ctx.lang))
    for e in entries:
        _entry(ctx, lib, e)
    if deleted:
        _deleted_list(ctx, lib, deleted)
    st.subheader(t("upload", ctx.lang))
    up = st.file_uploader(t("upload", ctx.lang), type=["toml"], key="upload", label_visibility="collapsed")
    if up is not None:
        handle_upload(ctx, up.name, up.getvalue())


def _save_form(ctx, lib) -> list[dict] | None:
    """The save form; returns the new list after a save."""
    st.subheader(t("save_title", ctx.lang))
    with st.form("save_form", clear_on_submit=True):
        name = st.text_input(t("name", ctx.lang), key="save_name", max_chars=MAX_NAME)
        author = st.text_input(t("author", ctx.lang), key="save_author", max_chars=MAX_AUTHOR)
        note = st.text_area(t("note", ctx.lang), key="save_note", max_chars=MAX_NOTE)
        submitted = st.form_submit_button(t("save", ctx.lang))
    if not submitted:
        return None
    if not name.strip():
        st.error(t("need_name", ctx.lang))
        return None
    try:
        sid = lib.save(name[:MAX_NAME], dict(ctx.moved), ctx.overrides.get(core.CURRENT, {}), ctx.base,
                       author[:MAX_AUTHOR], note[:MAX_NOTE])
        st.success(f"{t('saved', ctx.lang)} {name} (#{sid})")
        return lib.list()
    except (ValueError, LibraryError) as exc:
        st.error(f"{t('db_error', ctx.lang)} {exc}")
        return None


def _entry(ctx, lib, e: dict) -> None:
    """One saved scenario: load, add to the comparison, delete (asks first), export."""
    from lxapp.library import _stem, to_toml
    ss = st.session_state
    with st.container(border=True):
        c = st.columns([4, 1, 1, 1, 1])
        when = _dt.datetime.fromtimestamp(e["created"]).strftime("%Y-%m-%d %H:%M")
        c[0].markdown(f"**{_esc(e['name'])}** · {_esc(e['author']) or '—'} · {when}  \n{_esc(e['note'])}")
        if c[1].button(t("load", ctx.lang), key=f"lib_load_{e['id']}"):
            _load_into_levers(ctx, e)
        if c[2].button(t("add_compare", ctx.lang), key=f"lib_add_{e['id']}"):
            key = f"lib:{e['id']}"
            ss.setdefault("extra", {})[key] = {"label": e["name"], "overrides": e["overrides"]}
            ss["sc"] = list(dict.fromkeys(list(ss.get("sc", [])) + [key]))
            st.rerun()
        if ss.get("_lib_confirm") == e["id"]:
            if c[3].button("✔ " + t("confirm_delete", ctx.lang), key=f"lib_del_ok_{e['id']}", type="primary"):
                _delete(ctx, lib, e)
            if c[3].button(t("cancel", ctx.lang), key=f"lib_del_no_{e['id']}"):
                ss.pop("_lib_confirm", None)
                st.rerun()
        elif c[3].button(t("delete", ctx.lang), key=f"lib_del_{e['id']}"):
            ss["_lib_confirm"] = e["id"]
            st.rerun()
        c[4].download_button("TOML", to_toml(e, ctx.bundle.variables), f"{_stem(e['name'])}.toml",
                             "application/toml", key=f"lib_exp_{e['id']}", help=t("export_file", ctx.lang))


def _deleted_list(ctx, lib, deleted: list[dict]) -> None:
    with st.expander(t("deleted_list", ctx.lang) + f" ({len(deleted)})"):
        for e in deleted[:50]:
            c = st.columns([5, 1])
            c[0].markdown(f"~~{_esc(e['name'])}~~ · {_esc(e['author']) or '—'}")
            if c[1].button(t("restore", ctx.lang), key=f"lib_restore_{e['id']}"):
                _act(lambda e=e: lib.restore(e["id"]), ctx, "success", f"{t('restored', ctx.lang)} {e['name']}")
                st.rerun()


def _esc(text: str) -> str:
    """Text from a person shown as text, not as Markdown."""
    import re
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$])", r"\\\1", text or "")


def _act(fn, ctx, kind: str, msg: str) -> None:
    try:
        fn()
        st.session_state["_lib_msgs"] = [(kind, msg)]
    except LibraryError as exc:
        st.session_state["_lib_msgs"] = [("error", f"{t('db_error', ctx.lang)} {exc}")]


def _delete(ctx, lib, e: dict) -> None:
    ss = st.session_state
    try:
        lib.delete(e["id"])
    except LibraryError as exc:
        ss["_lib_msgs"] = [("error", f"{t('db_error', ctx.lang)} {exc}")]
        st.rerun()
    ss.pop("_lib_confirm", None)
    ss["_lib_undo"] = {"id": e["id"], "name": e["name"]}
    ss.get("extra", {}).pop(f"lib:{e['id']}", None)
    ss["sc"] = [s for s in ss.get("sc", []) if s != f"lib:{e['id']}"]
    st.rerun()


def handle_upload(ctx, filename: str, data: bytes) -> str | None:
    """Validate an uploaded scenario file (size, key count, TOML, the model's names and ranges);
    on success add it to the comparison. Returns its key."""
    from engine.errors import EngineError
    from engine.scenarios import scenario_from_dict

    from lxapp.uploads import UploadError, check_base, read_scenario_toml

    try:
        parsed = read_scenario_toml(filename, data)
        check_base(filename, parsed, list(ctx.bundle.scenarios))
        sc = scenario_from_dict(parsed, ctx.bundle.model, filename, ctx.bundle.scenario_dir)
    except UploadError as exc:
        st.error(t("upload_bad", ctx.lang) + f" {exc}")
        return None
    except EngineError as exc:
        st.error(t("upload_bad", ctx.lang) + f"\n\n{exc}")
        return None
    except Exception as exc:  # noqa: BLE001 - whatever it is, the app keeps running
        st.error(t("upload_bad", ctx.lang) + f" {filename}: {type(exc).__name__}: {str(exc)[:300]}")
        return None
    key = f"upload:{sc.name}"
    ss = st.session_state
    ss.setdefault("extra", {})[key] = {"label": sc.label(ctx.lang), "overrides": sc.overrides}
    if key not in ss.get("sc", []) and "sc" in ss:
        ss["sc"] = list(ss.get("sc", [])) + [key]
        ss["_lib_msgs"] = [("success", f"{t('upload_ok', ctx.lang)} {sc.label(ctx.lang)}")]
        st.rerun()
    st.success(f"{t('upload_ok', ctx.lang)} {sc.label(ctx.lang)}")
    return key


def _load_into_levers(ctx, entry: dict) -> None:
    """The saved scenario's base and moved levers become the current settings."""
    ss = st.session_state
    base = entry.get("base") if entry.get("base") in ctx.bundle.scenarios else ctx.base
    ss["base"] = base
    ss["_base_prev"] = base
    moved = {}
    for lv in core.levers(ctx.bundle, ss.get("more", []), base):
        if lv.name in entry["levers"]:
            try:
                val = core.fit(lv, float(entry["levers"][lv.name]))
            except (TypeError, ValueError):
                continue
            if val != core.fit(lv, core.scenario_value(ctx.bundle, base, lv)):
                moved[lv.name] = val
    ss["lv"] = moved
    ss["_lib_msgs"] = [("success", f"{t('loaded', ctx.lang)} {entry['name']}")]
    st.rerun()
