"""Linxiang SD: the Streamlit app. Run with `streamlit run app.py` (or `make run`).

Page code lives in the package lxapp/ (see docs/app.md).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lxapp.ui import main  # noqa: E402

main()
