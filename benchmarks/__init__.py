"""Benchmarks: our path vs the raw library on the same input, printed as ratios."""
