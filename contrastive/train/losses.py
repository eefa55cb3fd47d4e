"""The losses a config may name, as functions of (x, y, scale, bias) and, for the mesh, their
ring-sharded form."""
import functools
import math

from contrastive import losses, parallel


def _clip(x, y, scale, bias, *, block_size=None, axis_name=None):
    del bias  # InfoNCE has none
    return losses.clip_loss(x, y, scale, block_size=block_size, axis_name=axis_name)


def _siglip(x, y, scale, bias, *, block_size=None, axis_name=None):
    return losses.siglip_loss(x, y, scale, bias, block_size=block_size, axis_name=axis_name)


LOSSES = {"clip": _clip, "siglip": _siglip}


def make_loss(name: str, mesh, block_size: int | None = None):
    """loss(x, y, scale, bias) over global (N, d) embeddings on `mesh`.

    With more than one batch shard the loss runs as a ring under shard_map: each device keeps
    its N/P rows and the other modality's blocks travel around, so no device ever gathers the
    whole batch of embeddings (see contrastive.parallel.ring)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    loss = functools.partial(LOSSES[name], block_size=block_size)
    batch_shards = math.prod(mesh.shape[a] for a in parallel.BATCH_AXES if a in mesh.shape)
    if batch_shards > 1:
        return parallel.ring.sharded_loss(loss, mesh, parallel.BATCH_AXES)
    return loss
