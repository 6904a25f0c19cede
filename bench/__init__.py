"""Overt's benchmark harness.

``python -m bench`` runs every registered group; ``python -m bench --only <group>`` runs one.
Each group lives in one module under :mod:`bench.groups` and exposes ``GROUP``, a
:class:`bench.core.Group`. Results are rows in ``bench/results.json`` (see ``docs/benchmarks.md``).
"""
