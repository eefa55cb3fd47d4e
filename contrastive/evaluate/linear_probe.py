"""Linear probe: multinomial logistic regression on frozen features (CLIP, Radford et al. 2021,
appendix A.3: L-BFGS, the L2 strength swept on a validation split, then refit on all of train).

The fit minimises, over W (d, C) and an unpenalised bias b (C,),
    sum_i w_i CE(softmax(x_i W + b), y_i) / sum_i w_i + (l2 / 2) ||W||^2,
which with unit sample weights is scikit-learn's LogisticRegression at C = 1 / (l2 N).
Features are standardised with the training mean and standard deviation first.
"""
from collections.abc import Sequence
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@functools.partial(jax.jit, static_argnames=("num_classes", "max_steps"))
def _fit(features, labels, weights, l2, num_classes: int, max_steps: int, tol):
    """(W, b) minimising the objective above by L-BFGS with a zoom line search."""

    def objective(params):
        logits = features @ params["w"] + params["b"]
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)[:, 0]
        return jnp.sum(weights * nll) / jnp.sum(weights) + 0.5 * l2 * jnp.sum(params["w"] ** 2)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(grad, state, params, value=value, grad=grad,
                                       value_fn=objective)
        return optax.apply_updates(params, updates), state

    def running(carry):
        _, state = carry
        count = otu.tree_get(state, "count")
        return (count == 0) | ((count < max_steps)
                               & (otu.tree_l2_norm(otu.tree_get(state, "grad")) >= tol))

    params = {"w": jnp.zeros((features.shape[1], num_classes)), "b": jnp.zeros(num_classes)}
    params, _ = jax.lax.while_loop(running, step, (params, solver.init(params)))
    return params["w"], params["b"]


def fit_logistic_regression(features, labels, l2: float, num_classes: int | None = None,
                            weights=None, max_steps: int = 500, tol: float = 1e-5):
    """(W (d, C), b (C,)) as NumPy; weights (N,) >= 0 leave rows out (0) or count them."""
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.int32)
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"features (N, d) and labels (N,) expected, got {features.shape}, "
                         f"{labels.shape}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    num_classes = num_classes or int(labels.max()) + 1
    weights = np.ones(len(labels), np.float32) if weights is None else np.asarray(weights,
                                                                                  np.float32)
    w, b = _fit(features, labels, weights, jnp.float32(l2), num_classes, max_steps,
                jnp.float32(tol))
    return np.asarray(w, np.float64), np.asarray(b, np.float64)


def _standardise(train, *others):
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)  # a constant feature stays constant (zero)
    return [(x - mean) / std for x in (train, *others)]


def validation_mask(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """(n,) bool: a random round(fraction * n) rows (at least one, not all) held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    count = round(fraction * n)
    if not 0 < count < n:
        raise ValueError(f"{n} training rows are too few to hold out a validation split")
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(seed).permutation(n)[:count]] = True
    return mask


def linear_probe(train_features, train_labels, test_features, test_labels,
                 l2_grid: Sequence[float] = L2_GRID, val_fraction: float = 0.2,
                 seed: int = 0, max_steps: int = 500) -> dict[str, float]:
    """Chooses l2 by accuracy on a random val_fraction of train (the first best in grid order),
    refits on all of train and reports test top-1.

    Returns {"linear_probe_top1", "linear_probe_l2", "linear_probe_val_top1"}.
    """
    train_labels = np.asarray(train_labels, np.int64)
    test_labels = np.asarray(test_labels, np.int64)
    if not l2_grid:
        raise ValueError("l2_grid is empty")
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    train, test = _standardise(np.asarray(train_features, np.float64),
                               np.asarray(test_features, np.float64))
    val = validation_mask(len(train), val_fraction, seed)

    def accuracy(w, b, x, y):
        return float(np.mean(np.argmax(x @ w + b, axis=1) == y))

    # Same array shapes for every fit (held-out rows get weight 0): one compilation serves all.
    val_scores = []
    for l2 in l2_grid:
        w, b = fit_logistic_regression(train, train_labels, l2, num_classes,
                                       weights=~val, max_steps=max_steps)
        val_scores.append(accuracy(w, b, train[val], train_labels[val]))
    best = int(np.argmax(val_scores))
    w, b = fit_logistic_regression(train, train_labels, l2_grid[best], num_classes,
                                   max_steps=max_steps)
    return {"linear_probe_top1": accuracy(w, b, test, test_labels),
            "linear_probe_l2": float(l2_grid[best]),
            "linear_probe_val_top1": val_scores[best]}
