"""The train state: everything a step reads and writes, and everything a checkpoint holds."""
from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
    """step: updates done so far; params: trainable parameters (incl. temperature and bias);
    model_state: non-trained variables (batch-norm statistics; {} for the Transformers);
    opt_state: the optimiser's state; rng: the run's base key (raw uint32[2]), folded with
    the step inside the train step so a resumed run draws the same numbers; loss_state: the
    loss's per-example state, indexed by example id ({} for most losses; iSogCLR's
    temperatures and moving averages, see `train.per_example`)."""

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: jax.Array
    loss_state: Any = flax.struct.field(default_factory=dict)


def opt_state_shardings(abstract_opt_state, params_shardings, params_treedef, replicated):
    """Shardings for the optimiser state: every copy of the parameter tree inside it (Adam's
    moments) is laid out like the parameters; everything else (counts) is replicated."""
    is_params_copy = lambda node: jax.tree.structure(node) == params_treedef
    return jax.tree.map(
        lambda node: params_shardings if is_params_copy(node) else replicated,
        abstract_opt_state,
        is_leaf=is_params_copy,
    )
