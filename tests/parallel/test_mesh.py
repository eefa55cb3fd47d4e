import jax
import numpy as np
import pytest
from jax.sharding import AxisType

from contrastive.parallel import MESH_AXES, make_mesh


@pytest.mark.parametrize(
    "axis_sizes, expected",
    [
        ({"data": 8}, (8, 1, 1)),
        ({"fsdp": 8}, (1, 8, 1)),
        ({"data": 2, "model": 4}, (2, 1, 4)),
        ({"data": 2, "fsdp": 2, "model": 2}, (2, 2, 2)),
        ({"data": -1}, (8, 1, 1)),
        ({"data": 2, "fsdp": -1, "model": 2}, (2, 2, 2)),
        ({"data": -1, "model": 4}, (2, 1, 4)),
    ],
)
def test_mesh_shape(axis_sizes, expected):
    mesh = make_mesh(axis_sizes)
    assert mesh.axis_names == MESH_AXES == ("data", "fsdp", "model")
    assert tuple(mesh.shape[axis] for axis in MESH_AXES) == expected
    assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in jax.devices())
    assert mesh.axis_types == (AxisType.Auto,) * 3


def test_mesh_over_some_devices():
    devices = jax.devices()[4:]
    mesh = make_mesh({"fsdp": -1}, devices=devices)
    assert mesh.shape["fsdp"] == 4 and set(mesh.devices.flat) == set(devices)


@pytest.mark.parametrize(
    "axis_sizes, message",
    [
        ({"data": 3}, r"needs 3 devices, but there are 8"),
        ({"data": 2, "model": 2}, r"needs 4 devices, but there are 8"),
        ({}, r"needs 1 devices, but there are 8"),
        ({"data": 3, "fsdp": -1}, r"cannot fill mesh axis 'fsdp': 8 devices are not divisible by 3"),
        ({"data": -1, "fsdp": -1}, r"only one mesh axis may be -1, got \['data', 'fsdp'\]"),
        ({"tensor": 8}, r"unknown mesh axes \['tensor'\]; the mesh axes are \['data', 'fsdp', 'model'\]"),
        ({"data": 0}, r"mesh axis 'data' has size 0"),
        ({"data": 2.0}, r"mesh axis 'data' has size 2.0"),
    ],
)
def test_bad_mesh_is_a_clear_error(axis_sizes, message):
    with pytest.raises(ValueError, match=message):
        make_mesh(axis_sizes)


def test_numpy_sizes_are_accepted():
    assert make_mesh({"data": np.int64(8)}).shape["data"] == 8
