"""Meshes, logical-axis rules and shardings: the only package that names mesh axes."""
from contrastive.parallel.mesh import MESH_AXES, make_mesh, mesh_shape
from contrastive.parallel.ring import ring_loop, ring_shift, sharded_loss
from contrastive.parallel.rules import DEFAULT_RULES, Rules, check_rules, with_overrides
from contrastive.parallel.sharding import (
    BATCH_AXES,
    batch_sharding,
    batch_shards,
    param_shardings,
    sharding_context,
)

__all__ = [
    "MESH_AXES", "make_mesh", "mesh_shape", "DEFAULT_RULES", "Rules", "check_rules",
    "with_overrides", "BATCH_AXES", "batch_sharding", "batch_shards", "param_shardings",
    "sharding_context", "ring_loop", "ring_shift", "sharded_loss",
]
