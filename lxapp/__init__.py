"""Linxiang SD web app: the logic behind ``app.py``.

Most modules here work without Streamlit (so tests and benchmarks can reach them):
``core`` (model, scenarios, levers, runs, ensemble, actuals, targets), ``lmdi``,
``charts`` (plotly figures), ``library`` (the SQLite scenario library), ``report``
(CSV/Excel/HTML export), ``i18n`` and ``state`` (URL query parameters).
``ui`` and ``pages`` hold the Streamlit code.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CJK_FONT = '"Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif'
