"""needle's benchmark suites (pytest-benchmark) and their markdown report.

Run ``pytest benchmarks`` from the repository root; see ``docs/benchmarks.md``.
"""
