"""Synergy Serve: classic ML and deep learning models behind one HTTP API."""

__version__ = "0.1.0"
