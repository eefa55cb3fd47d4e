"""The losses' `impl` argument: which implementation computes the statistics of S."""
from __future__ import annotations

IMPLS = ("xla", "pallas")


def check_impl(impl: str, axis_name=None) -> str:
    """Returns `impl` after checking it, or raises a ValueError that names the choices."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}.")
    if impl == "pallas" and axis_name is not None:
        raise ValueError(
            "impl='pallas' does not support axis_name yet: the fused kernels run on one device, "
            "and the ring (blocks travelling between devices) exists only in the XLA engine. "
            "Use impl='xla' under shard_map."
        )
    return impl
