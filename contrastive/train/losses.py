"""The losses a config may name (`config.loss`, options in `config.loss_options`), one record
each: the function, the scalars and batch fields it reads, and its per-example state if any.

A record's function is called as

    fn(x, y, *scalars, **per_example, **options, block_size=..., axis_name=...)

with `scalars` the task's values named by `record.scalars` ("scale", "bias") in that order,
and `per_example` the batch's class labels (when `record.labels`) and the batch's rows of the
loss's per-example state. It returns the loss, or (loss, per-example outputs) for a loss with
state. Its options are its keyword arguments with defaults (and those of its state's
functions): naming any other is an error when the loss is bound. x and y are image and
caption embeddings (image-text) or two views (two-view); for a record with
inputs="prototype_scores" (SwAV), the views' scores against the model's prototypes, which the
config check requires the model to have. Adding a loss: write its function on the engine
(contrastive/losses/), then one record below.
"""
import dataclasses
import difflib
import functools
import inspect
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from contrastive import losses, parallel
from contrastive.losses import isogclr

# The engine's own arguments, which the trainer sets: never a user option.
_ENGINE_ARGS = ("block_size", "axis_name")


def _defaults(fn: Callable) -> dict:
    """fn's keyword arguments that have defaults, minus the engine's."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not p.empty and name not in _ENGINE_ARGS}


def _accepted(fn: Callable, options: Mapping) -> dict:
    return {k: v for k, v in options.items() if k in inspect.signature(fn).parameters}


@dataclasses.dataclass(frozen=True)
class PerExample:
    """State a loss keeps for every training example, gathered by the batch's example ids.

    init(num_examples, **options) -> {name: (num_examples, ...) array}
    update(rows, row_grads, outputs, **options) -> (new rows, metrics): the batch's rows after
      the step, from their gradients and the loss's per-example outputs.
    """

    init: Callable
    update: Callable


def _no_update(rows, row_grads, outputs):
    del row_grads, outputs
    return rows, {}


NO_STATE = PerExample(init=lambda num_examples: {}, update=_no_update)


@dataclasses.dataclass(frozen=True)
class Loss:
    """One loss as the trainer runs it (see the module docstring)."""

    fn: Callable
    scalars: tuple[str, ...] = ("scale",)
    labels: bool = False
    state: PerExample = NO_STATE
    multi_view: bool = False  # accepts y = (N, V - 1, d), the other views (model.num_views > 2)
    # What x and y are: "embeddings" (unit rows) or "prototype_scores" (a two_view model with
    # model.num_prototypes > 0: the views' (N, K) scores against its prototypes, SwAV)
    inputs: str = "embeddings"

    def options(self) -> dict:
        """Every option with its default."""
        return {**_defaults(self.state.init), **_defaults(self.state.update), **_defaults(self.fn)}

    def check_options(self, name: str, options: Mapping | None) -> dict:
        """The options, after checking that each is one of this loss's."""
        options = dict(options or {})
        valid = self.options()
        for key in options:
            if key not in valid:
                near = difflib.get_close_matches(key, valid, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                listed = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "none"
                raise ValueError(f"unknown option {key!r} for loss {name!r}{hint}; its options "
                                 f"(with defaults): {listed}")
        return options


def _views(x, y):
    """(V, N, d): x and y as two views, or x and y's V - 1 views (y: (N, V - 1, d))."""
    return jnp.stack([x, y]) if y.ndim == 2 else jnp.concatenate([x[None],
                                                                  jnp.swapaxes(y, 0, 1)])


def _ntxent(x, y, scale, *, decoupled=False, **kw):
    """x and y as views; negatives include every view of the other samples (SimCLR; V > 2:
    the multi-view InfoNCE of the poly-view framework)."""
    return losses.ntxent_loss(_views(x, y), scale, decoupled=decoupled, **kw)


def _supcon(x, y, scale, *, labels, decoupled=False, **kw):
    """Every view pooled, positives = every other row with the same class label."""
    views = _views(x, y)
    return losses.supcon_loss(views.reshape(-1, views.shape[-1]),
                              jnp.tile(labels, views.shape[0]), scale, decoupled=decoupled, **kw)


def _cwcl(x, y, scale, **kw):
    """x's embeddings, detached, give the intra-modal similarities: with the image tower
    pretrained and locked (configs/lit.py:loss=cwcl) they are the frozen tower's, as in the
    paper; without a locked tower this is a self-distilled CWCL."""
    return losses.cwcl_loss(x, y, scale, jax.lax.stop_gradient(x), **kw)


def _isogclr(x, y, *, tau_x, tau_y, log_u_x, log_u_y, gamma=0.8, rho=6.0, **kw):
    """Per-example temperatures replace the shared scale."""
    loss, estimates = losses.isogclr_loss(x, y, tau_x, tau_y,
                                          isogclr.Estimates(log_u_x, log_u_y),
                                          gamma=gamma, rho=rho, **kw)
    return loss, estimates._asdict()


def _swav(x, y, scale, *, epsilon=0.05, sinkhorn_iterations=3, num_global=2, block_size=None,
          axis_name=None):
    """x and y's views are prototype scores; views 1 and 2 are the global ones (whose codes
    are predicted), views 3..V the small crops. N x K: no tiles, so block_size is unused."""
    del block_size
    return losses.swav_loss(_views(x, y), scale, epsilon=epsilon,
                            sinkhorn_iterations=sinkhorn_iterations, num_global=num_global,
                            axis_name=axis_name)


LOSSES = {
    "clip": Loss(losses.clip_loss),
    "siglip": Loss(losses.siglip_loss, scalars=("scale", "bias")),
    "ntxent": Loss(_ntxent, multi_view=True),
    "supcon": Loss(_supcon, labels=True, multi_view=True),
    "dcl": Loss(losses.dcl_loss),
    "hard_negative": Loss(losses.hard_negative_loss),
    "cwcl": Loss(_cwcl),
    "clip_geometry": Loss(losses.clip_geometry_loss),
    "auc": Loss(losses.auc_loss),
    "z_loss": Loss(losses.z_loss),
    "gram": Loss(losses.gram_loss, multi_view=True),  # y: (N, V - 1, d), the anchor's others
    "amcl": Loss(losses.amcl_loss, scalars=()),  # pair temperatures replace the shared one
    "isogclr": Loss(_isogclr, scalars=(),
                    state=PerExample(isogclr.initial_state, isogclr.update_state)),
    "mochi": Loss(losses.mochi_loss),
    "swav": Loss(_swav, multi_view=True, inputs="prototype_scores"),
}


def get(name: str) -> Loss:
    """The record of `name`, or a ValueError listing the names."""
    if name not in LOSSES:
        near = difflib.get_close_matches(name, LOSSES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"unknown loss {name!r}{hint}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a static jit argument
class BoundLoss:
    """A record with its options, on a mesh: what the train step calls.

    loss(x, y, scale, bias, labels, rows) -> (loss, per-example outputs) over global (N, d)
    embeddings; with more than one batch shard it runs as a ring under shard_map, so no device
    ever gathers the whole batch of embeddings (see contrastive.parallel.ring)."""

    record: Loss
    options: dict
    function: Callable

    def __call__(self, x, y, scale, bias, labels, rows):
        if jnp.ndim(y) == 3 and not self.record.multi_view:
            multi = ", ".join(name for name, r in LOSSES.items() if r.multi_view)
            raise ValueError(f"model.num_views = {jnp.shape(y)[1] + 1} needs a multi-view loss "
                             f"({multi}); this loss compares two views")
        available = {"scale": scale, "bias": bias}
        per_example = {"labels": labels} if self.record.labels else {}
        out = self.function(x, y, *[available[s] for s in self.record.scalars],
                            **per_example, **rows)
        return out if isinstance(out, tuple) else (out, {})

    def initial_state(self, num_examples: int) -> dict:
        return self.record.state.init(num_examples,
                                      **_accepted(self.record.state.init, self.options))

    def update_state(self, rows, row_grads, outputs):
        return self.record.state.update(rows, row_grads, outputs,
                                        **_accepted(self.record.state.update, self.options))


def bind(name: str, mesh, block_size: int | None = None, options=None) -> BoundLoss:
    """The loss `name` with `options` (checked against its own), ready for the train step."""
    record = get(name)
    options = record.check_options(name, options)
    function = functools.partial(record.fn, block_size=block_size,
                                     **_accepted(record.fn, options))
    if parallel.batch_shards(mesh) > 1:
        function = parallel.sharded_loss(function, mesh)
    return BoundLoss(record, options, function)


def gather(loss_state: dict, index) -> dict:
    """The batch's rows of every per-example array."""
    return {name: values[index] for name, values in loss_state.items()}


def scatter(loss_state: dict, index, rows: dict) -> dict:
    """loss_state with the batch's rows written back at `index` (a repeated id keeps one)."""
    return {name: values.at[index].set(rows[name].astype(values.dtype))
            for name, values in loss_state.items()}
