"""Geometry of a paired embedding space: NumPy (N, d) in, Python floats out, float64 inside.

x[i] and y[i] are a positive pair (an image and its caption, or two views of one image). The
quantities that the definitions state on the unit sphere normalise the rows first:

  alignment      E ||x_i - y_i||^a                          (Wang & Isola 2020, eq. 4)
  uniformity     log E_{i != j} exp(-t ||x_i - x_j||^2)      (Wang & Isola 2020, eq. 5)
  modality gap   || mean_i x_i - mean_i y_i ||               (Liang et al. 2022, sec. 4.1)
  effective rank exp H(p), p_k = s_k / sum_k s_k             (Roy & Vetterli 2007)
  cosines        mean cos(x_i, y_i) and mean_{i != j} cos(x_i, y_j)
"""
import numpy as np

from contrastive.evaluate.embed import unit_rows

# Rows per block in the pairwise sums: memory O(_CHUNK x N), never N x N.
_CHUNK = 1024


def _paired(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = unit_rows(x), unit_rows(y)
    if x.shape != y.shape:
        raise ValueError(f"paired embeddings need equal shapes, got {x.shape} and {y.shape}")
    return x, y


def alignment(x, y, alpha: float = 2.0) -> float:
    """mean_i ||x_i - y_i||^alpha of unit rows; 0 when every pair coincides, at most 2^alpha."""
    x, y = _paired(x, y)
    return float(np.mean(np.linalg.norm(x - y, axis=1) ** alpha))


def uniformity(x, t: float = 2.0, chunk: int = _CHUNK) -> float:
    """log mean_{i != j} exp(-t ||x_i - x_j||^2) of unit rows (0 at worst, when all coincide).

    Summed over blocks of rows as a running log-sum-exp, so a large t cannot underflow.
    """
    x = unit_rows(x)
    n = len(x)
    if n < 2:
        raise ValueError("uniformity needs at least two embeddings")
    total = -np.inf
    for start in range(0, n, chunk):
        block = x[start : start + chunk]
        # ||a - b||^2 = 2 - 2 <a, b> for unit rows
        logits = -t * np.maximum(2.0 - 2.0 * block @ x.T, 0.0)
        rows = np.arange(len(block))
        logits[rows, start + rows] = -np.inf  # leave out i == j
        total = np.logaddexp(total, _logsumexp(logits))
    return float(total - np.log(n * (n - 1.0)))


def _logsumexp(a: np.ndarray) -> float:
    peak = np.max(a)
    if not np.isfinite(peak):
        return peak
    return float(peak + np.log(np.sum(np.exp(a - peak))))


def modality_gap(x, y) -> float:
    """|| mean of unit x rows - mean of unit y rows ||, the distance between the centroids."""
    x, y = _paired(x, y)
    return float(np.linalg.norm(x.mean(axis=0) - y.mean(axis=0)))


def effective_rank(x) -> float:
    """exp(entropy of p), p the normalised singular values of the centred unit-row embeddings.

    Roy & Vetterli (2007) on the matrix X - mean(X) with unit rows X (as RankMe, Garrido et al.
    2023, on embeddings): singular values, not covariance eigenvalues (their squares). Between 1
    (all variation along one direction) and min(N, d) (equal spread); 0 if every row coincides.
    """
    x = unit_rows(x)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    if s.sum() <= 1e-12 * len(x):
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def positive_negative_cosines(x, y) -> tuple[float, float]:
    """(mean_i cos(x_i, y_i), mean_{i != j} cos(x_i, y_j)).

    The negatives' sum is (sum_i x_i) . (sum_j y_j) - sum_i x_i . y_i for unit rows: O(N d),
    no pairwise matrix at all.
    """
    x, y = _paired(x, y)
    n = len(x)
    if n < 2:
        raise ValueError("negative pairs need at least two embeddings")
    positives = np.einsum("id,id->i", x, y).sum()
    negatives = x.sum(axis=0) @ y.sum(axis=0) - positives
    return float(positives / n), float(negatives / (n * (n - 1.0)))


def geometry_metrics(x, y, prefix: str = "") -> dict[str, float]:
    """Every quantity above for paired embeddings, keyed prefix + name (x and y: the two sides)."""
    cos_positive, cos_negative = positive_negative_cosines(x, y)
    metrics = {
        "alignment": alignment(x, y),
        "uniformity_x": uniformity(x),
        "uniformity_y": uniformity(y),
        "modality_gap": modality_gap(x, y),
        "effective_rank_x": effective_rank(x),
        "effective_rank_y": effective_rank(y),
        "cos_positive": cos_positive,
        "cos_negative": cos_negative,
    }
    return {prefix + name: value for name, value in metrics.items()}
