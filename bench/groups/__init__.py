"""Benchmark groups: one module per group, each defining ``GROUP = Group(...)``.

:func:`bench.core.discover_groups` imports every module here whose name does not start with
``_``; a new group (``server``, ``transparency``, ``access``, ``groups``, ``scale``,
``matching``, ...) is registered by adding its module, nothing else.
"""
