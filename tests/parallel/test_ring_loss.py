"""The ring-sharded losses on 1, 2, 4 and 8 fake CPU devices against the float64 reference and
against the single-device loss."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses import clip_loss, reference, siglip_loss
from contrastive.losses.cases import paired, rel_err
from contrastive.parallel import batch_shards, make_mesh, sharded_loss

# (data, fsdp, model) meshes over the first P of the 8 fake devices.
MESHES = {1: (1, 1, 1), 2: (2, 1, 1), 4: (2, 2, 1), 8: (2, 4, 1), "8 with model": (2, 2, 2)}
LOSSES = {
    "clip": (clip_loss, reference.clip_loss_dense, (30.0,)),
    "siglip": (siglip_loss, reference.siglip_loss_dense, (30.0, -5.0)),
}


def _mesh(shape):
    data, fsdp, model = shape
    devices = jax.devices()[: data * fsdp * model]
    return make_mesh({"data": data, "fsdp": fsdp, "model": model}, devices=devices)


def _value_and_grads(fn, args):
    return jax.jit(jax.value_and_grad(fn, argnums=tuple(range(len(args)))))(*args)


@pytest.mark.parametrize("mesh_name", list(MESHES))
@pytest.mark.parametrize("loss_name", list(LOSSES))
# Per-device rows: one row; 7 rows in tiles of 3 (padding on every device); the automatic tile.
@pytest.mark.parametrize("rows_per_device,block_size", [(1, None), (7, 3), (33, None)])
def test_ring_matches_float64_reference(mesh_name, loss_name, rows_per_device, block_size):
    mesh = _mesh(MESHES[mesh_name])
    shards = batch_shards(mesh)
    loss, ref, scalars = LOSSES[loss_name]
    with jax.enable_x64(True):
        x, y = paired(shards, rows_per_device * shards)
        args = (x, y) + tuple(np.float64(s) for s in scalars)
        ring = sharded_loss(lambda *a, **k: loss(*a, block_size=block_size, **k), mesh)
        (value, grads), (want, want_grads) = _value_and_grads(ring, args), _value_and_grads(ref, args)
    n, scale = x.shape[0], scalars[0]
    assert rel_err(value, want, scale) < 1e-12
    floors = [scale / n, scale / n] + [1.0] * (len(grads) - 2)  # see test_against_reference
    for g, w, floor in zip(grads, want_grads, floors):
        assert rel_err(g, w, floor) < 1e-12


@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_ring_float32_equals_single_device(loss_name):
    """float32 on 8 devices equals the single-device blockwise loss to float32 rounding."""
    loss, _, scalars = LOSSES[loss_name]
    x, y = (jnp.float32(a) for a in paired(5, 8 * 37))
    args = (x, y) + tuple(jnp.float32(s) for s in scalars)
    ring = sharded_loss(lambda *a, **k: loss(*a, block_size=16, **k), _mesh((2, 4, 1)))
    single = lambda *a: loss(*a, block_size=16)
    (value, grads), (want, want_grads) = _value_and_grads(ring, args), _value_and_grads(single, args)
    assert rel_err(value, want) < 1e-6
    for g, w in zip(grads, want_grads):
        assert rel_err(g, w) < 1e-5


def test_indivisible_global_batch_is_a_clear_error():
    ring = sharded_loss(clip_loss, _mesh((2, 4, 1)))
    with pytest.raises(ValueError, match=r"must divide evenly over the 8 batch shards"):
        ring(jnp.ones((12, 4)), jnp.ones((12, 4)), 1.0)


def _shard_map_body_sizes(jaxpr):
    """Element counts of the values computed inside shard_map bodies (per-device values)."""
    from tests.losses.test_engine import _intermediate_sizes

    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "shard_map":
            yield from _intermediate_sizes(eqn.params["jaxpr"])
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None and eqn.primitive.name != "shard_map":
                yield from _shard_map_body_sizes(getattr(inner, "jaxpr", inner))


def test_no_device_holds_the_global_batch():
    """Inside the ring nothing per device reaches N d or N^2 / P: no all-gather, no logits."""
    n, d, block = 8 * 256, 16, 64
    ring = sharded_loss(lambda *a, **k: clip_loss(*a, block_size=block, **k), _mesh((2, 4, 1)))
    x = jnp.ones((n, d))
    jaxpr = jax.make_jaxpr(jax.value_and_grad(ring, argnums=(0, 1, 2)))(x, x, 1.0)
    sizes = list(_shard_map_body_sizes(jaxpr.jaxpr))
    assert sizes, "found no shard_map body"
    assert max(sizes) <= max(n // 8 * d, block * block), max(sizes)


# The zoo's losses reach the ring through the engine: per-example features (labels, frozen
# embeddings, positives, temperatures) travel with their blocks.
def _zoo_cases():
    from contrastive import losses
    from contrastive.losses import isogclr

    rng = np.random.default_rng(9)
    n = 8 * 5
    labels = rng.integers(0, 4, n).astype(np.int32)
    frozen = rng.normal(size=(n, 6))
    tau = rng.uniform(0.05, 0.3, n)
    estimates = isogclr.Estimates(np.log(rng.uniform(0.5, 2, n)), np.full(n, -np.inf))
    return {
        "ntxent": (lambda x, y, s, **k: losses.ntxent_loss(jnp.stack([x, y]), s, **k), {}),
        "supcon": (lambda x, y, s, labels, **k: losses.supcon_loss(
            jnp.concatenate([x, y]), jnp.concatenate([labels, labels]), s, **k),
            {"labels": labels}),
        "dclw": (lambda x, y, s, **k: losses.dcl_loss(x, y, s, sigma=0.5, **k), {}),
        "hard_negative": (lambda x, y, s, **k: losses.hard_negative_loss(
            x, y, s, beta=1.0, tau_plus=0.1, **k), {}),
        "cwcl": (lambda x, y, s, frozen, **k: losses.cwcl_loss(x, y, s, frozen, **k),
                 {"frozen": frozen}),
        "clip_geometry": (lambda x, y, s, **k: losses.clip_geometry_loss(x, y, s, **k), {}),
        "auc": (lambda x, y, s, **k: losses.auc_loss(x, y, s, margin=0.5, **k), {}),
        "clip_label_smoothing": (lambda x, y, s, **k: losses.clip_loss(
            x, y, s, label_smoothing=0.1, **k), {}),
        "siglip_label_smoothing": (lambda x, y, s, **k: losses.siglip_loss(
            x, y, s, -2.0, label_smoothing=0.2, **k), {}),
        "z_loss": (lambda x, y, s, **k: losses.z_loss(x, y, s, a=0.5, b=2.0, **k), {}),
        "isogclr": (lambda x, y, s, tau, log_u, **k: losses.isogclr_loss(
            x, y, tau * s, tau, isogclr.Estimates(*log_u), **k),
            {"tau": tau, "log_u": tuple(estimates)}),
    }


@pytest.mark.parametrize("name", list(_zoo_cases()))
def test_zoo_losses_on_the_ring_equal_one_device_in_float64(name):
    loss, extras = _zoo_cases()[name]
    mesh = _mesh((2, 4, 1))
    with jax.enable_x64(True):
        x, y = paired(11, 40)
        extras = jax.tree.map(jnp.asarray, extras)
        scale = jnp.float64(8.0)

        def run(fn):
            def total(x, y, scale):
                out = fn(x, y, scale, **extras)
                return out if not isinstance(out, tuple) else (out[0], out[1])

            has_aux = name == "isogclr"
            grad = jax.value_and_grad(total, argnums=(0, 1, 2), has_aux=has_aux)
            return jax.jit(grad)(x, y, scale)

        ring = sharded_loss(lambda x, y, s, **k: loss(x, y, s, block_size=3, **k), mesh)
        single = lambda x, y, s, **k: loss(x, y, s, block_size=3, **k)
        got, want = run(ring), run(single)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert rel_err(g, w, 1.0 / 40) < 1e-11


# Blocks travel in pieces (`ring_loop(..., chunks)`): every piece's payload must come home whole.
@pytest.mark.parametrize("chunks", [1, 2, 3, 5, 16])
def test_ring_loop_pieces_bring_every_payload_home(chunks):
    """A step whose results are exact integers: each device adds (its index + 1) times the
    visiting rows to their payload (2 payload rows per visitor row, as flat accumulators of
    tiles have b) and the visitor's total to its own `local`. Pieces of any size, one of them
    shorter (5 rows in 2 or 3 pieces), give the closed form."""
    from jax.sharding import PartitionSpec

    from contrastive.parallel.ring import ring_index, ring_loop

    mesh = _mesh((2, 4, 1))
    axes = ("data", "fsdp")
    rows = np.arange(8 * 5 * 3, dtype=np.int32).reshape(8 * 5, 3)

    def body(block):
        def step(local, visitor, payload):
            weight = ring_index(axes) + 1
            return (local + weight * jnp.sum(visitor),
                    payload + weight * jnp.repeat(jnp.sum(visitor, axis=1), 2))

        local, payload = jax.lax.pcast(
            (jnp.int32(0), jnp.zeros(2 * block.shape[0], jnp.int32)), axes, to="varying")
        local, payload = ring_loop(step, local, block, payload, axes, chunks)
        return local[None], payload

    local, payload = jax.jit(jax.shard_map(
        body, mesh=mesh, in_specs=PartitionSpec(axes), out_specs=PartitionSpec(axes)))(rows)
    np.testing.assert_array_equal(payload, 36 * np.repeat(rows.sum(axis=1), 2))
    np.testing.assert_array_equal(local, np.arange(1, 9) * rows.sum())


@pytest.mark.parametrize("loss_name", list(LOSSES))
# 17 tiles of 1 row: pieces of 2 tiles and one of 1; 4 tiles of 2 rows: 4 pieces of one tile.
@pytest.mark.parametrize("rows_per_device,block_size", [(17, 1), (8, 2)])
def test_ring_in_pieces_matches_float64_reference(loss_name, rows_per_device, block_size):
    mesh = _mesh((2, 4, 1))
    loss, ref, scalars = LOSSES[loss_name]
    with jax.enable_x64(True):
        x, y = paired(3, rows_per_device * 8)
        args = (x, y) + tuple(np.float64(s) for s in scalars)
        ring = sharded_loss(lambda *a, **k: loss(*a, block_size=block_size, **k), mesh)
        (value, grads), (want, want_grads) = _value_and_grads(ring, args), _value_and_grads(ref, args)
    n, scale = x.shape[0], scalars[0]
    assert rel_err(value, want, scale) < 1e-12
    floors = [scale / n, scale / n] + [1.0] * (len(grads) - 2)
    for g, w, floor in zip(grads, want_grads, floors):
        assert rel_err(g, w, floor) < 1e-12


def test_ring_per_device_memory_is_a_sixth_of_one_device():
    """XLA's per-device count (arguments + gradient outputs + temporaries) for the CLIP loss
    and its gradients on 8 devices: at most 1/6 of the single-device blockwise loss's, and
    below 5 (N/P) d floats, of which the arguments and outputs are 4 (x, y, dx, dy)."""
    n, d, block = 8192, 32, 64
    mesh = make_mesh({"data": 8})

    def total_bytes(fn, x):
        grad = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)))
        m = grad.lower(x, x, jnp.float32(1.0)).compile().memory_analysis()
        return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                - m.alias_size_in_bytes)

    single = total_bytes(lambda x, y, s: clip_loss(x, y, s, block_size=block),
                         jax.ShapeDtypeStruct((n, d), jnp.float32))
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    ring = total_bytes(
        sharded_loss(lambda *a, **k: clip_loss(*a, block_size=block, **k), mesh, ("data",)),
        jax.ShapeDtypeStruct((n, d), jnp.float32, sharding=rows))
    assert ring <= single / 6, (ring, single)
    assert ring < 5 * (n // 8) * d * 4, ring
