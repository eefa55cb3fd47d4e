"""Test-wide setup: eight fake CPU devices, so sharded code runs on one machine.

XLA reads the flag once, when the backend starts, so it must be set before any test imports jax.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

# Imported only now: the flag above must be set before anything can start jax.
import pytest

from contrastive.data import digits


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory):
    """The embedded digits dataset, built once per test session into a temporary data_dir."""
    data_dir = str(tmp_path_factory.mktemp("digits_tfds"))
    digits.prepare(data_dir)
    return data_dir

