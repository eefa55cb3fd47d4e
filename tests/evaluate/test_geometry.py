"""Geometry metrics against direct float64 formulas (pairwise loops, covariance eigenvalues) on
random inputs, and against values known by hand on small built ones."""
import numpy as np
import pytest

from contrastive.evaluate import geometry


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 6)) * rng.uniform(0.5, 3.0, size=(37, 1))  # rows of any norm
    return x, x + 0.7 * rng.normal(size=x.shape) + 0.3  # correlated, shifted: a gap


def dense_pairwise(x, y):
    """(N, N) matrix of unit-row differences' squared norms, by explicit pairs."""
    u, v = unit(x), unit(y)
    return np.array([[np.sum((a - b) ** 2) for b in v] for a in u])


def test_alignment_matches_the_formula(pair):
    x, y = pair
    for alpha in (1.0, 2.0, 3.0):
        expected = np.mean([np.linalg.norm(a - b) ** alpha for a, b in zip(unit(x), unit(y))])
        assert geometry.alignment(x, y, alpha) == pytest.approx(expected, rel=1e-12)


def test_alignment_by_hand():
    e = np.eye(3)
    assert geometry.alignment(e, 5 * e) == pytest.approx(0.0, abs=1e-15)
    assert geometry.alignment(e, -e) == pytest.approx(4.0)  # ||2 e_i||^2
    assert geometry.alignment(e, np.roll(e, 1, axis=0), alpha=1) == pytest.approx(np.sqrt(2))


@pytest.mark.parametrize("chunk", [1, 5, 36, 37, 1000])
def test_uniformity_in_any_chunks_matches_all_pairs(pair, chunk):
    x, _ = pair
    d2 = dense_pairwise(x, x)
    off = ~np.eye(len(x), dtype=bool)
    for t in (0.5, 2.0):
        expected = np.log(np.mean(np.exp(-t * d2[off])))
        assert geometry.uniformity(x, t, chunk=chunk) == pytest.approx(expected, rel=1e-12)


def test_uniformity_by_hand():
    assert geometry.uniformity(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-15)  # all coincide
    # Two antipodal points: ||x1 - x2||^2 = 4, so log exp(-2 * 4) = -8.
    assert geometry.uniformity(np.array([[0.0, 3.0], [0.0, -1.0]])) == pytest.approx(-8.0)
    # Large t underflows exp in a plain sum; the running log-sum-exp keeps it exact: -t * 4.
    assert geometry.uniformity(np.array([[1.0, 0], [-1.0, 0]]), t=500.0) == pytest.approx(-2000)


def test_modality_gap_matches_the_formula_and_hand_values(pair):
    x, y = pair
    expected = np.linalg.norm(unit(x).mean(axis=0) - unit(y).mean(axis=0))
    assert geometry.modality_gap(x, y) == pytest.approx(expected, rel=1e-12)
    assert expected > 0.1  # the shift made a gap
    ones, e1, e2 = np.ones((5, 1)), np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    assert geometry.modality_gap(ones * e1, ones * e2) == pytest.approx(np.sqrt(2))
    assert geometry.modality_gap(x, 3 * x) == pytest.approx(0.0, abs=1e-15)


def test_effective_rank_matches_covariance_eigenvalues(pair):
    x, _ = pair
    u = unit(x)
    centred = u - u.mean(axis=0)
    eigenvalues = np.clip(np.linalg.eigvalsh(centred.T @ centred), 0, None)
    p = np.sqrt(eigenvalues) / np.sqrt(eigenvalues).sum()  # singular values = sqrt(eigenvalues)
    expected = np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))
    assert geometry.effective_rank(x) == pytest.approx(expected, rel=1e-9)
    assert 1.0 < expected < 6.0


def test_effective_rank_by_hand():
    plus_minus = np.array([[1.0, 0, 0], [-1.0, 0, 0]])
    assert geometry.effective_rank(plus_minus) == pytest.approx(1.0)  # one direction
    cross = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 2.0, 0], [0, -2.0, 0]])
    assert geometry.effective_rank(cross) == pytest.approx(2.0)  # two equal directions
    assert geometry.effective_rank(np.eye(4) * 3) == pytest.approx(3.0)  # a centred simplex
    assert geometry.effective_rank(np.ones((3, 2))) == 0.0  # no spread at all


def test_positive_and_negative_cosines_match_all_pairs(pair):
    x, y = pair
    cos = unit(x) @ unit(y).T
    off = ~np.eye(len(x), dtype=bool)
    positive, negative = geometry.positive_negative_cosines(x, y)
    assert positive == pytest.approx(np.mean(np.diag(cos)), rel=1e-12)
    assert negative == pytest.approx(np.mean(cos[off]), rel=1e-10)
    e = np.eye(4)
    assert geometry.positive_negative_cosines(e, 2 * e) == pytest.approx((1.0, 0.0))
    assert geometry.positive_negative_cosines(e, np.ones((4, 4))) == pytest.approx((0.5, 0.5))


def test_geometry_metrics_gathers_every_quantity(pair):
    x, y = pair
    metrics = geometry.geometry_metrics(x, y, prefix="views/")
    assert metrics == {
        "views/alignment": geometry.alignment(x, y),
        "views/uniformity_x": geometry.uniformity(x),
        "views/uniformity_y": geometry.uniformity(y),
        "views/modality_gap": geometry.modality_gap(x, y),
        "views/effective_rank_x": geometry.effective_rank(x),
        "views/effective_rank_y": geometry.effective_rank(y),
        "views/cos_positive": geometry.positive_negative_cosines(x, y)[0],
        "views/cos_negative": geometry.positive_negative_cosines(x, y)[1],
    }
    assert all(isinstance(v, float) for v in metrics.values())


def test_mistakes_are_clear_errors():
    with pytest.raises(ValueError, match="equal shapes"):
        geometry.alignment(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="at least two"):
        geometry.uniformity(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        geometry.modality_gap(np.ones(3), np.ones(3))
