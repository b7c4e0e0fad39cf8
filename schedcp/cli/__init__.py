"""The ``schedcp`` command line."""
