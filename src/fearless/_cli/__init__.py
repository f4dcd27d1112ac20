"""The ``fearless`` command line (``python -m fearless``)."""
