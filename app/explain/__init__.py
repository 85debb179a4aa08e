"""Explanations: attribution methods per input kind (no HTTP); see app.explain.service."""
