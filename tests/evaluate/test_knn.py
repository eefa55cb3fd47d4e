"""Weighted and majority kNN against scikit-learn's KNeighborsClassifier (cosine metric, brute
force), and by hand."""
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from contrastive.evaluate import knn


@pytest.fixture
def clusters():
    """Five noisy classes in 12 dimensions, rows of any norm: references and queries."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 12))
    def sample(n):
        labels = rng.integers(0, 5, size=n)
        x = (centres[labels] + 1.3 * rng.normal(size=(n, 12))) * rng.uniform(0.2, 4, (n, 1))
        return x, labels
    return sample(200), sample(90)


def sklearn_votes(reference, labels, queries, k, temperature):
    weights = "uniform" if temperature is None else (lambda d: np.exp((1.0 - d) / temperature))
    model = KNeighborsClassifier(k, weights=weights, metric="cosine", algorithm="brute")
    return model.fit(reference, labels).predict_proba(queries)


@pytest.mark.parametrize("k,temperature", [(1, 0.07), (10, 0.07), (20, 0.5), (7, 0.02)])
def test_weighted_knn_matches_scikit_learn(clusters, k, temperature):
    (reference, labels), (queries, query_labels) = clusters
    votes = knn.knn_scores(reference, labels, queries, k, temperature, chunk=16)
    expected = sklearn_votes(reference, labels, queries, k, temperature)
    # the same class wins, and the votes are the same up to one positive factor per query
    np.testing.assert_array_equal(votes.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(votes / votes.sum(1, keepdims=True), expected, atol=1e-9)
    accuracy = knn.knn_top1(reference, labels, queries, query_labels, k, temperature)
    assert accuracy == pytest.approx(np.mean(expected.argmax(1) == query_labels))
    assert 0.3 < accuracy < 1.0


@pytest.mark.parametrize("k", [1, 5, 20])
def test_majority_vote_matches_scikit_learn_where_there_is_no_tie(clusters, k):
    (reference, labels), (queries, _) = clusters
    votes = knn.knn_scores(reference, labels, queries, k, temperature=None)
    expected = sklearn_votes(reference, labels, queries, k, None)
    counts = np.sort(expected, axis=1)
    clear = counts[:, -1] > counts[:, -2]
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(votes.argmax(1)[clear], expected.argmax(1)[clear])
    np.testing.assert_allclose(np.floor(votes) / k, expected)  # one vote per neighbour


def test_neighbours_in_any_chunks_match_scikit_learn(clusters):
    (reference, _), (queries, _) = clusters
    model = NearestNeighbors(n_neighbors=6, metric="cosine", algorithm="brute").fit(reference)
    distances, expected = model.kneighbors(queries)
    for chunk in (1, 13, 1000):
        similarities, indices = knn.nearest_neighbours(queries, reference, 6, chunk=chunk)
        np.testing.assert_array_equal(indices, expected)
        np.testing.assert_allclose(similarities, 1.0 - distances, atol=1e-12)


def test_weights_outvote_a_majority_by_hand():
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # class 0 near, 2 x class 1 far
    labels = np.array([0, 1, 1])
    query = np.array([[1.0, 0.3]])  # cosine 0.96 to class 0, 0.29 to class 1
    assert knn.knn_top1(reference, labels, query, np.array([1]), k=3) == 1.0  # majority
    # T = 0.1: exp(9.6) outweighs 2 exp(2.9); T = 10: the two far ones win again.
    assert knn.knn_top1(reference, labels, query, np.array([0]), k=3, temperature=0.1) == 1.0
    assert knn.knn_top1(reference, labels, query, np.array([1]), k=3, temperature=10) == 1.0
    # A tiny temperature neither overflows nor zeroes every vote.
    votes = knn.knn_scores(reference, labels, query, 3, temperature=1e-4)
    assert np.all(np.isfinite(votes)) and votes[0, 0] == 1.0


def test_mistakes_are_clear_errors():
    with pytest.raises(ValueError, match="k must be between 1 and the 3 references"):
        knn.knn_scores(np.eye(3), np.arange(3), np.eye(3), k=4)
    with pytest.raises(ValueError, match="temperature must be positive"):
        knn.knn_scores(np.eye(3), np.arange(3), np.eye(3), k=2, temperature=0.0)
