"""Per-example loss state: iSogCLR's temperatures and moving-average estimates, one entry per
example of the training split, gathered by the batch's example ids and written back after the
step (`losses.isogclr`).

The temperatures take a projected gradient step of their own (not the optimiser's),

    tau_i <- clip(tau_i - tau_lr * dF_i / dtau_i, tau_min, tau_max),

with dF_i / dtau_i the derivative of anchor i's own term (the batch loss's gradient times the
batch size). The paper uses Adam for the temperatures; a plain step keeps the state to one
array per side. Examples that appear twice in one batch keep one of their updates.
"""
import jax.numpy as jnp

from contrastive.losses import isogclr

TEMPERATURES = ("tau_x", "tau_y")
DEFAULTS = {"tau_init": 0.07, "tau_lr": 1e-2, "tau_min": 0.005, "tau_max": 1.0}


def initial_state(loss_name: str, num_examples: int, options) -> dict:
    """The step-0 state of `loss_name` for a split of `num_examples` ({} for stateless)."""
    if loss_name != "isogclr":
        return {}
    tau_init = dict(options).get("tau_init", DEFAULTS["tau_init"])
    return isogclr.initial_state(num_examples, tau_init)


def gather(loss_state: dict, index) -> dict:
    """The batch's rows of every per-example array."""
    return {name: values[index] for name, values in loss_state.items()}


def update(loss_state: dict, index, inputs: dict, input_grads: dict, estimates, options) -> dict:
    """The state after a step: new estimates and temperatures written back at `index`."""
    opts = {**DEFAULTS, **dict(options)}
    batch = index.shape[0]
    new = {"log_u_x": estimates.log_u_x, "log_u_y": estimates.log_u_y}
    for name in TEMPERATURES:
        step = opts["tau_lr"] * batch * input_grads[name]
        new[name] = jnp.clip(inputs[name] - step, opts["tau_min"], opts["tau_max"])
    return {name: loss_state[name].at[index].set(new[name].astype(loss_state[name].dtype))
            for name in loss_state}
