"""The linear probe against scikit-learn's LogisticRegression (lbfgs, C = 1 / (l2 N)): the
fitted probabilities, row weights, and the whole validation sweep."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from contrastive.evaluate import linear_probe


def sklearn_fit(x, y, l2):
    return LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-10, max_iter=10_000).fit(x, y)


def softmax(z):
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    """Four classes, signal in a few of 20 dimensions, with noise: neither trivial nor hopeless."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 20))
    y = np.argmax(x[:, :4] + 0.9 * rng.normal(size=(240, 4)), axis=1)
    return x, y


@pytest.mark.parametrize("l2", [1e-3, 1e-1])
def test_fit_matches_scikit_learn(data, l2):
    x, y = data
    w, b = linear_probe.fit_logistic_regression(x, y, l2)
    expected = sklearn_fit(x, y, l2)
    np.testing.assert_allclose(softmax(x @ w + b), expected.predict_proba(x), atol=2e-4)
    np.testing.assert_allclose(w.T, expected.coef_, atol=2e-3)  # unique: the problem is convex
    np.testing.assert_array_equal(np.argmax(x @ w + b, axis=1), expected.predict(x))


def test_zero_weights_leave_rows_out(data):
    x, y = data
    keep = np.arange(len(y)) % 3 != 0
    w, b = linear_probe.fit_logistic_regression(x, y, 1e-2, weights=keep)
    expected = sklearn_fit(x[keep], y[keep], 1e-2)
    np.testing.assert_allclose(softmax(x @ w + b), expected.predict_proba(x), atol=2e-4)


def test_the_sweep_matches_scikit_learn_on_the_same_split():
    # 40 dimensions for 135 fitting rows: the L2 strength matters (the middle one wins here).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 40))
    y = np.argmax(x[:, :4] + 0.9 * rng.normal(size=(240, 4)), axis=1)
    train_x, train_y, test_x, test_y = x[:180], y[:180], x[180:], y[180:]
    grid = (1e-4, 1e-2, 1.0, 30.0)
    result = linear_probe.linear_probe(train_x, train_y, test_x, test_y, grid, 0.25, seed=1)

    # The oracle: the same protocol, with scikit-learn's scaler and classifier.
    scaler = StandardScaler().fit(train_x)
    train_s, test_s = scaler.transform(train_x), scaler.transform(test_x)
    val = linear_probe.validation_mask(180, 0.25, seed=1)
    assert val.sum() == 45
    val_scores = [
        sklearn_fit(train_s[~val], train_y[~val], l2).score(train_s[val], train_y[val])
        for l2 in grid
    ]
    best = int(np.argmax(val_scores))
    ordered = sorted(val_scores)
    assert ordered[-1] - ordered[-2] >= 2 / 45  # the choice is not a near tie
    assert result["linear_probe_l2"] == grid[best]
    assert result["linear_probe_val_top1"] == pytest.approx(val_scores[best], abs=1.01 / 45)
    expected = sklearn_fit(train_s, train_y, grid[best]).score(test_s, test_y)
    assert result["linear_probe_top1"] == pytest.approx(expected, abs=1.01 / 60)
    assert 0.3 < result["linear_probe_top1"] < 1.0


def test_separable_clusters_are_classified_perfectly():
    rng = np.random.default_rng(1)
    labels = np.arange(90) % 3
    x = 5.0 * np.eye(3)[labels] + 0.3 * rng.normal(size=(90, 3))
    result = linear_probe.linear_probe(x[:60], labels[:60], x[60:], labels[60:])
    assert result["linear_probe_top1"] == 1.0
    assert result["linear_probe_val_top1"] == 1.0
    assert result["linear_probe_l2"] == linear_probe.L2_GRID[0]  # the first of equal scores


def test_mistakes_are_clear_errors(data):
    x, y = data
    with pytest.raises(ValueError, match="val_fraction"):
        linear_probe.linear_probe(x, y, x, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="too few"):
        linear_probe.linear_probe(x[:2], y[:2], x, y, val_fraction=0.1)
    with pytest.raises(ValueError, match="l2_grid is empty"):
        linear_probe.linear_probe(x, y, x, y, l2_grid=())
    with pytest.raises(ValueError, match=r"features \(N, d\) and labels"):
        linear_probe.fit_logistic_regression(x, y[:-1], 1e-3)
