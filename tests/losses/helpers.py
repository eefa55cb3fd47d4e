"""Shared inputs and error measures for the loss tests."""
import numpy as np


def unit_rows(rng, n, d, duplicate=False):
    """(n, d) L2-normalised float64 rows; with `duplicate`, row n-1 repeats row 0."""
    a = rng.normal(size=(n, d))
    if duplicate and n > 1:
        a[-1] = a[0]
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def paired(seed, n, d=16, duplicate=False, noise=2.0):
    """Paired unit embeddings: y is x plus `noise` times a random unit vector.

    Noise 2 keeps pairs only loosely aligned, so that even at scale 1e4 many rows have a negative
    above their positive and the gradients stay O(scale / N) instead of vanishing (a vanishing
    gradient would make relative errors meaningless)."""
    rng = np.random.default_rng(seed)
    x = unit_rows(rng, n, d, duplicate)
    y = x + noise * unit_rows(rng, n, d)
    if duplicate and n > 1:
        y[-1] = y[0]
    return x, y / np.linalg.norm(y, axis=1, keepdims=True)


def rel_err(got, want, floor=1e-6):
    """Normwise relative error max|got - want| / max(max|want|, floor).

    The floor stands in for the quantity's natural size where the true value is ~0 by
    cancellation (N = 1 has loss 0; duplicated rows at scale 1e4 have dx = scale (p - p') y = 0),
    so that rounding of an O(floor) computation is not read as a large relative error."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.all(np.isfinite(got)), "non-finite values"
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), floor))
