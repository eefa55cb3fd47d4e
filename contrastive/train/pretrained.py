"""Step-0 weights from a published or earlier checkpoint (fine-tuning, LiT, CWCL's frozen tower).

config.model.pretrained names the file or run; pretrained_format how to read it; the parts in
pretrained_towers ("image", "text": each with its head, both: also the temperature and bias;
or top-level param names such as "image_tower") replace the freshly initialised ones. Applied
only when a run starts, never on resume (the checkpoint then holds the weights)."""
import os

import jax
import numpy as np

from contrastive import checkpoint, convert
from contrastive import task as task_lib

FORMATS = ("run", *convert.FILE_FORMATS)


def _read(model_config, task, abstract_params) -> dict:
    """The pretrained params as a (partial) numpy tree named like ours."""
    path, fmt = model_config.pretrained, model_config.get("pretrained_format", "run")
    if fmt not in FORMATS:
        raise ValueError(f"model.pretrained_format must be one of {', '.join(FORMATS)}, "
                         f"got {fmt!r}")
    if not os.path.exists(path):
        raise ValueError(f"model.pretrained: {path} does not exist")
    if fmt == "run":
        checkpoints = checkpoint.ReadOnlyCheckpoints(os.path.join(path, "checkpoints"))
        if not checkpoints.steps():
            raise ValueError(f"model.pretrained: no checkpoint under {path}/checkpoints")
        replicated = jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                           sharding=jax.sharding.SingleDeviceSharding(
                                               jax.devices()[0])), abstract_params)
        params = checkpoints.restore_state_items(checkpoints.steps()[-1],
                                                 {"params": replicated})["params"]
        checkpoints.close()
        return jax.tree.map(np.asarray, params)
    return convert.read_params(path, fmt, task.model)


def load_pretrained(state, model_config, task, shardings):
    """`state` with the chosen towers' params replaced by the pretrained ones, laid out as
    `shardings.params`. A missing or differently shaped leaf is a one-line ValueError."""
    towers = tuple(model_config.get("pretrained_towers", ("image", "text")))
    names = []
    for part in towers:
        if part not in task_lib.TOWER_PARAMS and part not in state.params:
            raise ValueError(f"model.pretrained_towers: {part!r} is neither a tower "
                             f"({', '.join(task_lib.TOWER_PARAMS)}) nor one of the params "
                             f"{sorted(state.params)}")
        names += task_lib.TOWER_PARAMS.get(part, (part,))
    if {"image", "text"} <= set(towers):
        names += ["log_scale", "bias"]
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state.params)
    source = _read(model_config, task, {k: abstract[k] for k in names})
    params = dict(state.params)
    for name in names:
        new = _like(source, abstract[name], name)
        params[name] = jax.tree.map(lambda v, s: jax.device_put(v, s), new,
                                    shardings.params[name])
    return state.replace(params=params)


def _like(source: dict, reference, path: str):
    """source[path...] shaped and typed like `reference` (extra leaves in a file are ignored)."""
    node = source
    for key in path.split("/"):
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(reference, dict):
        return {k: _like(source, v, f"{path}/{k}") for k, v in reference.items()}
    if node is None or np.shape(node) != reference.shape:
        raise ValueError(f"model.pretrained: {path} is {None if node is None else np.shape(node)}"
                         f", the model's {reference.shape}: the architectures differ")
    return np.asarray(node, reference.dtype)
