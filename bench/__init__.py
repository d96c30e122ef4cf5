"""The benchmark suite: ``python -m bench`` measures and writes docs/benchmarks.md.

Each module measures one thing and returns plain JSON-ready results; ``report``
turns them into the page and its plots. ``python -m bench --smoke`` runs a short
version of every benchmark, which the tests in tests/bench/ run too.
"""
