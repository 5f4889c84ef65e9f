"""Speed benchmarks: runnable scripts that measure and write their figures to ``results/``.

Tests never assert wall-clock times; these scripts are where speed is looked at.
"""
