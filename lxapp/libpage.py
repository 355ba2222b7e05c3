"""The scenario library page: save, list, load, compare, delete, export and upload."""
from __future__ import annotations

import tomllib

import streamlit as st

from lxapp import core
from lxapp.i18n import t


def _library():
    from lxapp.library import Library
    return Library()


def render(ctx) -> None:
    st.header(t("library", ctx.lang))
    ss = st.session_state
    try:
        lib = _library()
    except Exception as exc:  # noqa: BLE001 - a read-only disk or a bad path: say so, keep going
        st.error(t("db_error", ctx.lang) + f" {exc}")
        return
    for kind, msg in ss.pop("_lib_msgs", []):
        getattr(st, kind)(msg)
    st.subheader(t("save_title", ctx.lang))
    with st.form("save_form", clear_on_submit=True):
        name = st.text_input(t("name", ctx.lang), key="save_name")
        author = st.text_input(t("author", ctx.lang), key="save_author")
        note = st.text_area(t("note", ctx.lang), key="save_note")
        submitted = st.form_submit_button(t("save", ctx.lang))
    if submitted:
        if not name.strip():
            st.error(t("need_name", ctx.lang))
        else:
            levers = {k: v for k, v in ctx.lever_values.items()}
            sid = lib.save(name, levers, ctx.overrides.get(core.CURRENT, {}), ctx.base, author, note)
            st.success(f"{t('saved', ctx.lang)} {name} (#{sid})")
    st.subheader(t("saved_list", ctx.lang))
    entries = lib.list()
    if not entries:
        st.info(t("none_saved", ctx.lang))
    for e in entries:
        with st.container(border=True):
            c = st.columns([4, 1, 1, 1, 1])
            when = __import__("datetime").datetime.fromtimestamp(e["created"]).strftime("%Y-%m-%d %H:%M")
            c[0].markdown(f"**{e['name']}** · {e['author'] or '—'} · {when}  \n{e['note']}")
            if c[1].button(t("load", ctx.lang), key=f"lib_load_{e['id']}"):
                _load_into_levers(ctx, e)
            if c[2].button(t("add_compare", ctx.lang), key=f"lib_add_{e['id']}"):
                key = f"lib:{e['id']}"
                ss.setdefault("extra", {})[key] = {"label": e["name"], "overrides": e["overrides"]}
                pending(sc=list(dict.fromkeys(list(ss.get("sc", [])) + [key])))
                st.rerun()
            if c[3].button(t("delete", ctx.lang), key=f"lib_del_{e['id']}"):
                lib.delete(e["id"])
                ss.get("extra", {}).pop(f"lib:{e['id']}", None)
                pending(sc=[s for s in ss.get("sc", []) if s != f"lib:{e['id']}"])
                ss["_lib_msgs"] = [("success", f"{t('deleted', ctx.lang)} {e['name']}")]
                st.rerun()
            from lxapp.library import _stem, to_toml
            c[4].download_button("TOML", to_toml(e, ctx.bundle.variables), f"{_stem(e['name'])}.toml",
                                 "application/toml", key=f"lib_exp_{e['id']}", help=t("export_file", ctx.lang))
    st.subheader(t("upload", ctx.lang))
    up = st.file_uploader(t("upload", ctx.lang), type=["toml"], key="upload", label_visibility="collapsed")
    if up is not None:
        handle_upload(ctx, up.name, up.getvalue())


def handle_upload(ctx, filename: str, data: bytes) -> str | None:
    """Validate an uploaded scenario file; on success add it to the comparison. Returns its key."""
    from engine.errors import EngineError
    from engine.scenarios import scenario_from_dict

    try:
        text = data.decode("utf-8")
        parsed = tomllib.loads(text)
        sc = scenario_from_dict(parsed, ctx.bundle.model, filename, ctx.bundle.scenario_dir)
    except UnicodeDecodeError:
        st.error(t("upload_bad", ctx.lang) + f" {filename}: not UTF-8 text")
        return None
    except tomllib.TOMLDecodeError as exc:
        st.error(t("upload_bad", ctx.lang) + f" {filename}: TOML syntax error: {exc}")
        return None
    except EngineError as exc:
        st.error(t("upload_bad", ctx.lang) + f"\n\n{exc}")
        return None
    except Exception as exc:  # noqa: BLE001 - whatever it is, the app keeps running
        st.error(t("upload_bad", ctx.lang) + f" {filename}: {exc}")
        return None
    key = f"upload:{sc.name}"
    ss = st.session_state
    ss.setdefault("extra", {})[key] = {"label": sc.label(ctx.lang), "overrides": sc.overrides}
    if key not in ss.get("sc", []) and "sc" in ss:
        pending(sc=list(ss.get("sc", [])) + [key])
        ss["_lib_msgs"] = [("success", f"{t('upload_ok', ctx.lang)} {sc.label(ctx.lang)}")]
        st.rerun()
    st.success(f"{t('upload_ok', ctx.lang)} {sc.label(ctx.lang)}")
    return key


def pending(**values) -> None:
    """Widget values to set at the start of the next run (before the widgets exist)."""
    st.session_state.setdefault("_pending", {}).update(values)


def _load_into_levers(ctx, entry: dict) -> None:
    ss = st.session_state
    values = {}
    if entry.get("base") in ctx.bundle.scenarios:
        values["base"] = entry["base"]
        ss["_base_prev"] = entry["base"]
    from lxapp.ui import _fit
    for lv in core.levers(ctx.bundle, ss.get("more", [])):
        if lv.name in entry["levers"]:
            values[f"lv_{lv.name}"] = _fit(lv, entry["levers"][lv.name])
    pending(**values)
    ss["_lib_msgs"] = [("success", f"{t('loaded', ctx.lang)} {entry['name']}")]
    st.rerun()
