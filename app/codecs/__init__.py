"""Codecs: pure translations between wire formats and arrays (no model, no HTTP)."""
