"""Linxiang SD: the Streamlit app. Run with `streamlit run app.py` (or `make run`).

Page code lives in the package lxapp/ (see docs/app.md).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The model-run workers (lxapp/runpool.py, started with multiprocessing's "spawn") import the
# script that started them as "__mp_main__": they must not run the app, nor import Streamlit.
if __name__ != "__mp_main__":
    from lxapp.ui import main

    main()
