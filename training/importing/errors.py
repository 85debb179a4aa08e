"""The one error an import raises: what is wrong and what to do, safe to print."""


class ImportRefused(ValueError):
    """The model cannot be imported (unsafe, unfitted, not a model, inconsistent); the
    message says what was found and how to fix it. Nothing was written."""
