"""LiT and frozen parameters: locked leaves stay bit-identical, get no Adam moments and no
backward pass; per-tower learning-rate multipliers scale the update."""
import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import optax
import pytest

from contrastive import parallel
from contrastive import task as task_lib
from contrastive.train import loop, state as state_lib, step as step_lib
from contrastive.losses import clip_loss
from tests.train.helpers import tiny_config

BATCH = 16


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.standard_normal((BATCH, 8, 8, 1)).astype(np.float32),
            "tokens": rng.integers(1, 20, (BATCH, 8)).astype(np.int32),
            "index": np.arange(BATCH, dtype=np.int32),
            "label": rng.integers(0, 10, BATCH).astype(np.int32)}


def _run(steps=3, **optimizer):
    config = tiny_config("unused", batch_size=BATCH, data__max_len=8)
    config.optimizer.warmup_steps = 0
    for key, value in optimizer.items():
        config.optimizer[key] = value
    mesh = parallel.make_mesh({"data": -1})
    example = {k: v[0] for k, v in _batch().items()}
    task, init_fn, shardings, train_step = loop.build_train_step(config, mesh, example, 64, 64)
    rules = parallel.with_overrides(config.sharding_rules)
    state = state_lib.init_state(init_fn, shardings, 0, mesh, rules)
    start = jax.tree.map(np.asarray, state.params)
    for i in range(steps):
        state, _ = train_step(state, _batch(i))
    return config, task, start, state


def _toy_params():
    """A parameter tree named like a DualEncoder's (the optimiser sees only names and leaves)."""
    rng = np.random.default_rng(0)
    leaf = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
    block = lambda: {"ln1": {"scale": leaf(4), "bias": leaf(4)},
                     "attn": {"query_kernel": leaf(4, 2, 2)}}
    head = lambda: {"proj": {"kernel": leaf(4, 3)}}
    return {"image_tower": {"encoder": {"block0": block()}}, "image_head": head(),
            "text_tower": {"encoder": {"block0": block()}}, "text_head": head(),
            "log_scale": leaf(), "bias": leaf()}


def _optimizer(**fields):
    config = tiny_config("unused").optimizer
    config.warmup_steps = 0
    for key, value in fields.items():
        config[key] = value
    return state_lib.make_optimizer(config, total_steps=10)[0]


def _steps(optimizer, params, steps=3):
    opt_state = optimizer.init(params)
    for i in range(steps):
        grads = jax.tree.map(lambda p: jnp.sin(p * (i + 1)) + 0.1, params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    return params, opt_state


def _adam_states(opt_state):
    is_adam = lambda n: isinstance(n, optax.ScaleByAdamState)
    return [n for n in jax.tree.leaves(opt_state, is_leaf=is_adam) if is_adam(n)]


LIT = dict(locked_towers=("image",), frozen_patterns=("text_tower/encoder/block0/ln1/.*",))


def test_locked_params_are_bit_identical_the_rest_trains_and_has_moments():
    start = _toy_params()
    params, opt_state = _steps(_optimizer(**LIT), start)
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), start, params)
    locked = (changed["image_tower"], changed["image_head"],
              changed["text_tower"]["encoder"]["block0"]["ln1"])
    assert not any(jax.tree.leaves(locked))
    assert changed["text_tower"]["encoder"]["block0"]["attn"]["query_kernel"]
    assert changed["text_head"]["proj"]["kernel"] and changed["log_scale"] and changed["bias"]
    # Moments exist for exactly the 5 trainable leaves (text attention + head, two scalars).
    (adam,) = _adam_states(opt_state)
    assert len(jax.tree.leaves(adam.mu)) == len(jax.tree.leaves(adam.nu)) == 4
    unlocked = _steps(_optimizer(), start)[1]
    assert len(jax.tree.leaves(_adam_states(unlocked)[0].mu)) == len(jax.tree.leaves(start))


def test_a_tower_learning_rate_multiplier_scales_its_updates_only():
    start = _toy_params()
    plain = _steps(_optimizer(weight_decay=0.0), start, 1)[0]
    scaled = _steps(_optimizer(weight_decay=0.0, lr_multipliers={"text": 0.25}), start, 1)[0]
    delta = lambda p: jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b), p, start)
    for key in start:
        factor = 0.25 if key.startswith("text_") else 1.0
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, factor * b, rtol=1e-5, atol=1e-7),
                     delta(scaled)[key], delta(plain)[key])


@pytest.mark.slow
def test_a_lit_run_keeps_the_image_tower_bit_identical():
    _, _, start, state = _run(**LIT)
    now = jax.tree.map(np.asarray, state.params)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, start["image_tower"],
                                            now["image_tower"])))
    assert not np.array_equal(start["text_head"]["proj"]["kernel"],
                              now["text_head"]["proj"]["kernel"])


def _dot_count(fn, *args):
    return str(jax.make_jaxpr(fn)(*args)).count("dot_general")


def test_no_backward_pass_through_a_locked_tower():
    """The gradient's program with the image tower locked is the program of the gradient
    with respect to the other parameters only (the tower's weights closed over)."""
    config = tiny_config("unused", data__max_len=8, optimizer__locked_towers=("image",))
    task = task_lib.make_task(config, 64)
    inputs = [jnp.zeros((BATCH, 8, 8, 1)), jnp.zeros((BATCH, 8), jnp.int32)]
    start = nn.meta.unbox(jax.eval_shape(task.model.init, jax.random.PRNGKey(0), *inputs))["params"]
    batch = jax.tree.map(jnp.asarray, _batch())

    def value(task, params, image_params):
        (x, y), _ = task.embed({**params, **image_params}, {}, batch)
        return clip_loss(x, y, task.scale_and_bias({**params, **image_params})[0])

    image = {k: start[k] for k in ("image_tower", "image_head")}
    rest = {k: v for k, v in start.items() if k not in image}
    locked_grad = lambda p: jax.grad(lambda p: value(task, p, {}))(p)
    unlocked = task_lib.ImageTextTask(task.model, task.max_scale)
    rest_only = lambda p, image: jax.grad(lambda p: value(unlocked, p, image))(p)
    everything = lambda p: jax.grad(lambda p: value(unlocked, p, {}))(p)
    assert _dot_count(locked_grad, start) == _dot_count(rest_only, rest, image)
    assert _dot_count(locked_grad, start) < _dot_count(everything, start)


@pytest.mark.parametrize("field,value,match", [
    ("locked_towers", ("vision",), "locked_towers: 'vision'"),
    ("frozen_patterns", ("image_tower/(",), "is no regex"),
    ("frozen_patterns", ("imgae_tower/.*",), "matches no parameter"),
    ("lr_multipliers", {"image": -1.0}, "lr_multipliers"),
])
def test_bad_locking_fields_are_one_line_errors(field, value, match):
    with pytest.raises(ValueError, match=match):
        _run(steps=0, **{field: value})


def test_masked_moments_are_laid_out_like_their_params():
    """Under multi_transform the moments are parameter trees with locked leaves masked out;
    each remaining moment takes its parameter's sharding (not the replicated fallback)."""
    config = tiny_config("unused", batch_size=BATCH, data__max_len=8,
                         mesh={"data": 4, "fsdp": 2}, optimizer__locked_towers=("image",))
    mesh = parallel.make_mesh(dict(config.mesh))
    example = {k: v[0] for k, v in _batch().items()}
    _, _, shardings, _ = loop.build_train_step(config, mesh, example, 64, 64)
    (adam,) = _adam_states(shardings.opt_state)
    kernel = shardings.params["text_head"]["proj"]["kernel"]
    assert kernel.spec != jax.sharding.PartitionSpec()  # the rules shard it over fsdp
    assert adam.mu["text_head"]["proj"]["kernel"] == kernel
    assert adam.nu["text_head"]["proj"]["kernel"] == kernel
    masked = jax.tree.leaves(adam.mu["image_tower"],
                             is_leaf=lambda n: isinstance(n, optax.MaskedNode))
    assert masked and all(isinstance(n, optax.MaskedNode) for n in masked)
