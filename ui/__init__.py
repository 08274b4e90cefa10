"""Streamlit helpers shared by the pages: the store handle and cached reads (the only UI module)."""
