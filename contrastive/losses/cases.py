"""Each zoo loss next to its dense reference, as a checkable case: inputs of awkward shapes,
the blockwise call, the dense float64 formula and the gradients' natural sizes; and the error
measure. Shared by the tests (tests/losses/) and experiments/loss_accuracy.py."""
import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from contrastive import losses
from contrastive.losses import reference


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


@dataclasses.dataclass(frozen=True)
class Case:
    """inputs(seed, n, scale) -> args; blockwise(*args, block_size) and dense(*args) -> loss.
    Gradients are taken w.r.t. the args at `diff`; `floors(n, scale)` gives each one's natural
    size (see helpers.rel_err)."""

    inputs: Callable
    blockwise: Callable
    dense: Callable
    diff: tuple
    floors: Callable


def _labels(seed, n, classes=3):
    return np.random.default_rng(seed + 100).integers(0, classes, size=n).astype(np.int32)


def _pairs(seed, n, scale):
    x, y = paired(seed, n)
    return x, y, np.float64(scale)


def _embedding_floors(count):
    return lambda n, scale: [scale / n] * count + [1.0]


CASES = {
    "ntxent": Case(
        lambda seed, n, scale: (np.stack(paired(seed, n) + (unit_rows(np.random.default_rng(seed), n, 16),)),
                                np.float64(scale)),
        lambda v, s, block_size: losses.ntxent_loss(v, s, block_size=block_size),
        reference.ntxent_loss_dense, (0, 1), _embedding_floors(1)),
    "ntxent_decoupled": Case(
        lambda seed, n, scale: (np.stack(paired(seed, n)), np.float64(scale)),
        lambda v, s, block_size: losses.ntxent_loss(v, s, decoupled=True, block_size=block_size),
        lambda v, s: reference.ntxent_loss_dense(v, s, decoupled=True), (0, 1), _embedding_floors(1)),
    "supcon": Case(
        lambda seed, n, scale: (paired(seed, n)[0], _labels(seed, n), np.float64(scale)),
        lambda z, l, s, block_size: losses.supcon_loss(z, l, s, block_size=block_size),
        reference.supcon_loss_dense, (0, 2), _embedding_floors(1)),
    "supcon_decoupled": Case(
        lambda seed, n, scale: (paired(seed, n)[0], _labels(seed, n), np.float64(scale)),
        lambda z, l, s, block_size: losses.supcon_loss(z, l, s, decoupled=True,
                                                       block_size=block_size),
        lambda z, l, s: reference.supcon_loss_dense(z, l, s, decoupled=True), (0, 2),
        _embedding_floors(1)),
    "dcl": Case(
        _pairs, lambda x, y, s, block_size: losses.dcl_loss(x, y, s, block_size=block_size),
        reference.dcl_loss_dense, (0, 1, 2), _embedding_floors(2)),
    "dclw": Case(
        _pairs,
        lambda x, y, s, block_size: losses.dcl_loss(x, y, s, sigma=0.5, block_size=block_size),
        lambda x, y, s: reference.dcl_loss_dense(x, y, s, sigma=0.5), (0, 1, 2),
        _embedding_floors(2)),
    "hard_negative": Case(
        _pairs,
        lambda x, y, s, block_size: losses.hard_negative_loss(x, y, s, beta=1.0,
                                                              block_size=block_size),
        lambda x, y, s: reference.hard_negative_loss_dense(x, y, s, 1.0), (0, 1, 2),
        _embedding_floors(2)),
    "hard_negative_debiased": Case(
        _pairs,
        lambda x, y, s, block_size: losses.hard_negative_loss(x, y, s, beta=0.5, tau_plus=0.1,
                                                              block_size=block_size),
        lambda x, y, s: reference.hard_negative_loss_dense(x, y, s, 0.5, 0.1), (0, 1, 2),
        _embedding_floors(2)),
    "cwcl": Case(
        lambda seed, n, scale: _pairs(seed, n, scale) + (unit_rows(np.random.default_rng(seed + 7), n, 5),),
        lambda x, y, s, u, block_size: losses.cwcl_loss(x, y, s, u, block_size=block_size),
        reference.cwcl_loss_dense, (0, 1, 2), _embedding_floors(2)),
    "uniformity": Case(
        lambda seed, n, scale: (paired(seed, n)[0] * 3.0,),
        lambda z, block_size: losses.uniformity_loss(z, block_size=block_size),
        reference.uniformity_dense, (0,), lambda n, scale: [1.0 / n]),
    "alignment": Case(
        lambda seed, n, scale: paired(seed, n),
        lambda x, y, block_size: losses.alignment_loss(x, y, alpha=3.0),
        lambda x, y: reference.alignment_dense(x, y, 3.0), (0, 1), lambda n, scale: [1 / n] * 2),
    "clip_geometry": Case(
        _pairs,
        lambda x, y, s, block_size: losses.clip_geometry_loss(
            x, y, s, alignment_weight=0.5, uniformity_weight=2.0, block_size=block_size),
        lambda x, y, s: (reference.clip_loss_dense(x, y, s) + 0.5 * reference.alignment_dense(x, y)
                         + (reference.uniformity_dense(x) + reference.uniformity_dense(y))),
        (0, 1, 2), _embedding_floors(2)),
    "auc_logistic": Case(
        _pairs, lambda x, y, s, block_size: losses.auc_loss(x, y, s, margin=0.5,
                                                            block_size=block_size),
        lambda x, y, s: reference.auc_loss_dense(x, y, s, margin=0.5), (0, 1, 2),
        _embedding_floors(2)),
    "auc_squared_hinge": Case(
        _pairs,
        lambda x, y, s, block_size: losses.auc_loss(x, y, s, surrogate="squared_hinge", margin=1.0,
                                                    block_size=block_size),
        lambda x, y, s: reference.auc_loss_dense(x, y, s, "squared_hinge", 1.0), (0, 1, 2),
        lambda n, scale: [scale ** 2 / n] * 2 + [scale]),
    "clip_label_smoothing": Case(
        _pairs, lambda x, y, s, block_size: losses.clip_loss(x, y, s, label_smoothing=0.1,
                                                             block_size=block_size),
        lambda x, y, s: reference.clip_loss_dense(x, y, s, 0.1), (0, 1, 2), _embedding_floors(2)),
    "siglip_label_smoothing": Case(
        lambda seed, n, scale: _pairs(seed, n, scale) + (np.float64(-5.0),),
        lambda x, y, s, bias, block_size: losses.siglip_loss(x, y, s, bias, label_smoothing=0.2,
                                                             block_size=block_size),
        lambda x, y, s, bias: reference.siglip_loss_dense(x, y, s, bias, 0.2), (0, 1, 2, 3),
        lambda n, scale: [scale] * 2 + [1.0, 1.0]),
    "z_loss": Case(
        _pairs, lambda x, y, s, block_size: losses.z_loss(x, y, s, a=0.5, b=2.0,
                                                          block_size=block_size),
        lambda x, y, s: reference.z_loss_dense(x, y, s, 0.5, 2.0), (0, 1, 2),
        lambda n, scale: [1.0 / n] * 2 + [1.0]),  # scale-invariant: gradients O(1/N), d scale 0
    "amcl": Case(  # two heads of 8
        lambda seed, n, scale: paired(seed, n),
        lambda x, y, block_size: losses.amcl_loss(x, y, beta=0.1, block_size=block_size),
        lambda x, y: reference.amcl_loss_dense(x, y, beta=0.1), (0, 1),
        lambda n, scale: [20.0 / n] * 2),  # 1 / tau up to 1 / tau_min
    "gram_three": Case(  # an anchor and two other modalities (views 2 and 3)
        lambda seed, n, scale: (paired(seed, n)[0], np.stack(
            [paired(seed, n)[1], unit_rows(np.random.default_rng(seed + 9), n, 16)], axis=1),
            np.float64(scale)),
        lambda x, y, s, block_size: losses.gram_loss(x, y, s, block_size=block_size),
        reference.gram_loss_dense, (0, 1, 2), _embedding_floors(2)),
    # k = 5 of N - 1: N = 1 has no synthetic terms (clip's 0), 37 rows in tiles of 8 mix in the
    # running top-k of ragged tiles; s1 = 12 > the 10 pairs of 5 cycles through them.
    "mochi": Case(
        _pairs,
        lambda x, y, s, block_size: losses.mochi_loss(x, y, s, k=5, num_mixed=12,
                                                      num_query_mixed=3, block_size=block_size),
        lambda x, y, s: reference.mochi_loss_dense(x, y, s, 5, 12, 3), (0, 1, 2),
        _embedding_floors(2)),
    "swav": Case(  # 2 global views + 1 small crop, 7 prototypes; scores are cosines
        lambda seed, n, scale: (np.stack([unit_rows(np.random.default_rng(seed + v), n, 16)
                                          for v in range(3)])
                                @ unit_rows(np.random.default_rng(seed + 9), 7, 16).T,
                                np.float64(scale)),
        lambda p, s, block_size: losses.swav_loss(p, s),
        reference.swav_loss_dense, (0, 1), _embedding_floors(1)),
}
NEEDS_TWO = {"uniformity", "clip_geometry"}


def value_and_grads(fn, args, diff):
    """fn(*args) and its gradients w.r.t. the args at positions `diff`."""
    def loss(*diff_args):
        full = list(args)
        for i, a in zip(diff, diff_args):
            full[i] = a
        return fn(*full)

    return jax.value_and_grad(loss, argnums=tuple(range(len(diff))))(*(args[i] for i in diff))
