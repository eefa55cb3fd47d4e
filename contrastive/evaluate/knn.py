"""Nearest-neighbour classification on frozen features: each query takes the label of its
most cosine-similar reference (1-NN), or the majority of its k nearest."""
import numpy as np

from contrastive.evaluate.zero_shot import top1_accuracy


def knn_top1(reference: np.ndarray, reference_labels: np.ndarray, queries: np.ndarray,
             query_labels: np.ndarray, k: int = 1, num_classes: int | None = None) -> float:
    """Top-1 accuracy of k-NN voting (ties to the nearer neighbour's class order)."""
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = unit(np.asarray(queries, np.float64)) @ unit(np.asarray(reference, np.float64)).T
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    num_classes = num_classes or int(max(reference_labels.max(), query_labels.max())) + 1
    votes = np.zeros((len(queries), num_classes))
    for rank in range(k):  # nearer neighbours add slightly more, which breaks ties
        np.add.at(votes, (np.arange(len(queries)), reference_labels[nearest[:, rank]]),
                  1.0 + 1e-3 * (k - rank))
    return top1_accuracy(votes, query_labels)
