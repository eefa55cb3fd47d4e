"""The device mesh: one mesh with the three named axes this codebase uses.

data:  pure data parallelism (parameters replicated, batch split);
fsdp:  batch split as well, and parameters sharded too (gathered per layer when used);
model: tensor parallelism (MLP hidden units, attention heads, vocabulary split).
"""
import math
from typing import Mapping, Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

MESH_AXES = ("data", "fsdp", "model")


def mesh_shape(axis_sizes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """The (data, fsdp, model) sizes for `num_devices` devices.

    Axes left out have size 1; one axis may be -1, which takes num_devices / (product of others).
    Raises ValueError naming the numbers when the sizes cannot cover exactly num_devices.
    """
    unknown = sorted(set(axis_sizes) - set(MESH_AXES))
    if unknown:
        raise ValueError(f"unknown mesh axes {unknown}; the mesh axes are {list(MESH_AXES)}")
    sizes = [axis_sizes.get(axis, 1) for axis in MESH_AXES]
    for axis, size in zip(MESH_AXES, sizes):
        if not isinstance(size, (int, np.integer)) or (size < 1 and size != -1):
            raise ValueError(f"mesh axis {axis!r} has size {size!r}; sizes are positive or -1")
    fill = [axis for axis, size in zip(MESH_AXES, sizes) if size == -1]
    if len(fill) > 1:
        raise ValueError(f"only one mesh axis may be -1, got {fill}")
    if fill:
        others = math.prod(size for size in sizes if size != -1)
        if num_devices % others:
            raise ValueError(
                f"cannot fill mesh axis {fill[0]!r}: {num_devices} devices are not divisible by "
                f"{others}, the product of the other axis sizes {dict(axis_sizes)}"
            )
        sizes[MESH_AXES.index(fill[0])] = num_devices // others
    if math.prod(sizes) != num_devices:
        raise ValueError(
            f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, but there are "
            f"{num_devices}; make the sizes multiply to {num_devices} "
            f"or set one of them to -1"
        )
    return tuple(int(size) for size in sizes)


def make_mesh(axis_sizes: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A Mesh over `devices` (default: all devices, every process) with axes (data, fsdp, model).

    >>> make_mesh({"data": -1})                       # data parallel over every device
    >>> make_mesh({"data": 2, "fsdp": 2, "model": 2}) # 8 devices, all three kinds at once

    `model` is the last, fastest-varying axis, so on TPU/GPU its devices are neighbours: tensor
    parallelism communicates inside every layer and needs the fastest links; data parallelism
    communicates once per step. Axis types are Auto, so plain `jax.jit` propagates shardings.
    """
    devices = jax.devices() if devices is None else list(devices)
    shape = mesh_shape(axis_sizes, len(devices))
    # Topology-aware on TPU (neighbouring chips share the "model" axis); a plain reshape elsewhere.
    grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
    return Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))
