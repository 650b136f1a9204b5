"""Ensign's benchmark suite: ``python -m bench`` (``--quick`` for a smoke run, ``--help``).

See :mod:`bench.__main__` for what is measured and how, and the README's "Benchmarks" section for
the latest figures.
"""
