"""Measurements on real frameworks: the only part of suanli that imports torch (lazily, inside functions).

Nothing in ``suanli.core`` imports this package; it exists to check and calibrate the analytical formulas.
"""
