"""Nearest-neighbour classification on frozen features, by cosine similarity.

Weighted kNN (InstDisc, Wu et al. 2018, sec. 3.4; DINO, Caron et al. 2021, sec. 4.1): a query's
k most similar references vote for their labels with weight exp(s / T), s the cosine
similarity; the class with the largest total wins. T = None gives every neighbour weight one
(majority vote, ties to the class of the nearer neighbour). Queries are scored a block at a
time: memory O(chunk x references).
"""
import numpy as np

from contrastive.evaluate.embed import unit_rows
from contrastive.evaluate.zero_shot import top1_accuracy

_CHUNK = 1024


def nearest_neighbours(queries, reference, k: int, chunk: int = _CHUNK):
    """(similarities, indices), both (Q, k): each query's k most cosine-similar references,
    most similar first."""
    if not 1 <= k <= len(reference):
        raise ValueError(f"k must be between 1 and the {len(reference)} references, got {k}")
    queries, reference = unit_rows(queries), unit_rows(reference)
    sims, indices = [], []
    for start in range(0, len(queries), chunk):
        scores = queries[start : start + chunk] @ reference.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # the k best, unordered
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        indices.append(np.take_along_axis(top, order, axis=1))
        sims.append(np.take_along_axis(top_scores, order, axis=1))
    return np.concatenate(sims), np.concatenate(indices)


def knn_scores(reference, reference_labels, queries, k: int = 20,
               temperature: float | None = 0.07, num_classes: int | None = None,
               chunk: int = _CHUNK) -> np.ndarray:
    """(Q, C) class votes: sum over the k neighbours of exp(s / T) (T None: of one)."""
    reference_labels = np.asarray(reference_labels, np.int64)
    if temperature is not None and temperature <= 0:
        raise ValueError(f"temperature must be positive (or None), got {temperature}")
    num_classes = num_classes or int(reference_labels.max()) + 1
    sims, indices = nearest_neighbours(queries, reference, k, chunk)
    if temperature is None:
        # nearer neighbours add a little more, which breaks ties towards the nearest
        weights = np.broadcast_to(1.0 + 1e-3 * (k - np.arange(k)) / k, sims.shape)
    else:
        # exp((s - s_max) / T): each query's votes scaled by one constant, so the same winner
        # as exp(s / T), and neither overflow nor all-zero votes at small T
        weights = np.exp((sims - sims[:, :1]) / temperature)
    votes = np.zeros((len(sims), num_classes))
    np.add.at(votes, (np.arange(len(sims))[:, None], reference_labels[indices]), weights)
    return votes


def knn_top1(reference, reference_labels, queries, query_labels, k: int = 1,
             temperature: float | None = None, num_classes: int | None = None) -> float:
    """Top-1 accuracy of k-NN voting: majority (T None) or weighted by exp(s / T)."""
    query_labels = np.asarray(query_labels)
    num_classes = num_classes or int(max(np.max(reference_labels), query_labels.max())) + 1
    votes = knn_scores(reference, reference_labels, queries, k, temperature, num_classes)
    return top1_accuracy(votes, query_labels)
