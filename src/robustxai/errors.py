"""Errors the package raises for results it refuses to compute, importable from anywhere (no imports)."""
from __future__ import annotations


class NonFiniteError(ArithmeticError):
    """A model's loss or outputs are NaN or infinite: a diverged training or damaged weights. Raised
    instead of going on, since every accuracy, calibration and map computed from them would be wrong
    without saying so."""
