"""Streamlit entry point: the frame and the router (`streamlit run app.py`)."""

from __future__ import annotations

from ui.frame import navigation

navigation().run()
