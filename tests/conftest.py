"""Test-wide setup: eight fake CPU devices, so sharded code runs on one machine.

XLA reads the flag once, when the backend starts, so it must be set before any test imports jax.
"""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
# Tests compile hundreds of tiny programs and run each a few times: LLVM's cheapest code
# generation (XLA's own graph passes unchanged) cuts their compile time by about a quarter; the
# numbers agree with the optimised code to float32 rounding, which every tolerance allows.
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += (" --xla_backend_optimization_level=0"
                                " --xla_llvm_disable_expensive_passes=true")

# One persistent compilation cache for the whole session (the xdist workers and every training
# subprocess inherit this variable): most tests compile the same tiny models, and a compile is
# most of a tiny run's time. A fresh directory per session, so the suite's time stays honest.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="contrastive-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Imported only now: the flag above must be set before anything can start jax.
import pytest

from contrastive.data import digits


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory):
    """The embedded digits dataset, built once per test session into a temporary data_dir."""
    data_dir = str(tmp_path_factory.mktemp("digits_tfds"))
    digits.prepare(data_dir)
    return data_dir

