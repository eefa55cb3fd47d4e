"""SwAV: the Sinkhorn codes, the swapped-prediction loss against its float64 reference and on
the 8-device ring, the prototypes in the siamese model, multi-crop views, the config checks and
a short training run."""
import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest

from configs import digits_simclr
from contrastive import losses, models, parallel, task as task_lib
from contrastive.data import augment, examples, from_config
from contrastive.errors import UserError
from contrastive.losses import reference
from contrastive.losses.cases import rel_err, unit_rows
from contrastive.train import loop, validate
from contrastive.train import losses as train_losses


def _scores(seed, views, n, k=5, d=8):
    """(V, n, K) cosines of unit embeddings against unit prototypes."""
    prototypes = unit_rows(np.random.default_rng(seed + 50), k, d)
    return np.stack([unit_rows(np.random.default_rng(seed + v), n, d) @ prototypes.T
                     for v in range(views)])


def test_sinkhorn_codes_are_an_equipartition_and_match_the_linear_space_reference():
    p = _scores(0, 1, 12, k=4)[0]
    with jax.enable_x64(True):
        converged = np.asarray(jax.jit(lambda p: losses.sinkhorn_codes(p, 0.2, 60))(p))
        three = np.asarray(jax.jit(losses.sinkhorn_codes)(p))
        want = np.asarray(jax.jit(reference.sinkhorn_dense)(p))
    # Every prototype gets N / K of the batch, every example a distribution over prototypes.
    np.testing.assert_allclose(converged.sum(axis=0), np.full(4, 12 / 4), rtol=1e-10)
    np.testing.assert_allclose(converged.sum(axis=1), np.ones(12), rtol=1e-12)
    assert np.all(converged >= 0)
    # Three iterations: rows exactly normalised, columns nearer N / K than the plain softmax's,
    # and the reference's explicit-matrix iteration (SwAV's code) gives the same codes.
    np.testing.assert_allclose(three.sum(axis=1), np.ones(12), rtol=1e-12)
    softmax = np.exp(p / 0.05) / np.exp(p / 0.05).sum(axis=1, keepdims=True)
    spread = lambda q: np.max(np.abs(q.sum(axis=0) - 3.0))
    assert spread(three) < spread(softmax)
    np.testing.assert_allclose(three, want, rtol=1e-10, atol=1e-14)


def test_sinkhorn_of_equal_scores_is_uniform_and_float32_survives_cosines_over_epsilon():
    sinkhorn = jax.jit(losses.sinkhorn_codes, static_argnums=(1,))
    codes = sinkhorn(jnp.full((6, 3), 0.7), 0.05)
    np.testing.assert_allclose(codes, np.full((6, 3), 1 / 3), rtol=1e-6)
    # Scores +-1 over epsilon 0.01: exp(+-100) overflows float32 without the max shift.
    p = jnp.asarray(np.sign(_scores(1, 1, 8, k=4)[0]), jnp.float32)
    codes = sinkhorn(p, 0.01)
    assert codes.dtype == jnp.float32 and np.all(np.isfinite(codes))
    np.testing.assert_allclose(codes.sum(axis=1), np.ones(8), rtol=1e-5)


# (3 views, 2 global, SwAV's epsilon and iterations: the zoo's Case; 2 views: by hand below)
@pytest.mark.parametrize("views,num_global,epsilon,iterations", [(4, 2, 0.1, 5), (3, 1, 0.05, 1)])
def test_loss_and_gradients_equal_the_float64_reference(views, num_global, epsilon, iterations):
    p = _scores(2, views, 9)
    with jax.enable_x64(True):
        fn = lambda p, s: losses.swav_loss(p, s, epsilon=epsilon,
                                           sinkhorn_iterations=iterations, num_global=num_global)
        ref = lambda p, s: reference.swav_loss_dense(p, s, epsilon, iterations, num_global)
        value, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(p, 10.0)
        want, want_grads = jax.jit(jax.value_and_grad(ref, argnums=(0, 1)))(p, 10.0)
    assert rel_err(value, want, 1.0) < 1e-12
    assert rel_err(grads[0], want_grads[0], 10.0 / 9) < 1e-10
    assert rel_err(grads[1], want_grads[1], 1.0) < 1e-10


def test_two_views_by_hand():
    """V = 2 by hand: each view's log-softmax against the other's (reference) codes, and the
    gradient of detached codes, dL/dp_s = scale (softmax(scale p_s) - q_t) / (2 N)."""
    p = _scores(3, 2, 7)
    with jax.enable_x64(True):
        got, grad = jax.jit(jax.value_and_grad(lambda p: losses.swav_loss(p, 5.0)))(p)
        q = [np.asarray(reference.sinkhorn_dense(p[t])) for t in range(2)]
    logp = [5.0 * p[s] - np.log(np.exp(5.0 * p[s]).sum(axis=1, keepdims=True)) for s in range(2)]
    want = -0.5 * ((q[0] * logp[1]).sum(axis=1).mean() + (q[1] * logp[0]).sum(axis=1).mean())
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for s, t in ((0, 1), (1, 0)):
        np.testing.assert_allclose(grad[s], 5.0 * (np.exp(logp[s]) - q[t]) / 14, atol=1e-14)


def _ring_mesh():
    return parallel.make_mesh({"data": 2, "fsdp": 4})


def test_eight_devices_give_one_devices_codes_loss_and_gradients():
    p = jnp.asarray(_scores(4, 3, 16, k=6), jnp.float32)  # 2 rows per device
    x, y = p[0], jnp.swapaxes(p[1:], 0, 1)
    record = train_losses.get("swav").fn

    def loss_and_codes(x, y, s, axis_name=None):  # the codes: (N, K), split like x on the ring
        return (record(x, y, s, axis_name=axis_name),
                losses.sinkhorn_codes(x, axis_name=axis_name))

    ring = parallel.sharded_loss(loss_and_codes, _ring_mesh())
    grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(
        x, y, jnp.float32(10.0))
    ((value, codes), grads), ((want, want_codes), want_grads) = grad(ring), grad(loss_and_codes)
    np.testing.assert_allclose(codes, want_codes, rtol=1e-5, atol=1e-7)
    assert rel_err(value, want) < 1e-6
    for g, w in zip(grads, want_grads):
        assert rel_err(g, w) < 1e-5
    with jax.enable_x64(True):
        dense = reference.swav_loss_dense(np.asarray(p, np.float64), 10.0)
    assert rel_err(value, dense, 1.0) < 1e-5


@pytest.mark.parametrize("call,message", [
    (lambda: losses.swav_loss(jnp.ones((1, 4, 3)), 1.0), "V >= 2"),
    (lambda: losses.swav_loss(jnp.ones((2, 4, 3)), 1.0, epsilon=0.0), "epsilon"),
    (lambda: losses.swav_loss(jnp.ones((2, 4, 3)), 1.0, sinkhorn_iterations=0),
     "sinkhorn_iterations"),
    (lambda: losses.swav_loss(jnp.ones((2, 4, 3)), 1.0, num_global=3), r"num_global .* \[1, 2\]"),
])
def test_bad_input_is_one_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _config(**model):
    config = digits_simclr.get_config("runlocal")
    config.model.image_tower, config.model.image_variant = "vit", "mu/2"  # compiles fast
    config.model.image_options = {"width": 8, "mlp_dim": 16, "num_heads": 1, "depth": 1}
    for key, value in model.items():
        config.model[key] = value
    return config


def _param_shapes(task, n=4, views=2):
    inputs = task.inputs({f"view{v + 1}": jax.ShapeDtypeStruct((n, 8, 8, 1), jnp.float32)
                          for v in range(views)})
    boxed = jax.eval_shape(lambda k: task_lib.init_variables(task, k, inputs), jax.random.key(0))
    return jax.tree.map(jnp.shape, nn.meta.unbox(boxed["params"]))


def test_default_model_is_unchanged_and_prototypes_add_one_kernel():
    plain, swav = (task_lib.make_task(_config(num_prototypes=k)) for k in (0, 30))
    assert plain.model.prototypes is None
    shapes, swav_shapes = _param_shapes(plain), _param_shapes(swav)
    assert swav_shapes.pop("prototypes") == {"kernel": (32, 30)}
    assert swav_shapes == shapes


class _Tower(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(6, name="dense")(x)


def test_prototype_scores_are_cosines_and_features_stay_the_towers():
    head = models.MLPHead(8, 4, batch_norm=False)
    model = models.SiameseEncoder(_Tower(), head, models.Prototypes(5))
    without = models.SiameseEncoder(_Tower(), head)
    rng = np.random.default_rng(0)
    views = [jnp.asarray(rng.normal(size=(3, 7)), jnp.float32) for _ in range(3)]

    @jax.jit
    def outputs(views):
        params = nn.meta.unbox(model.init(jax.random.key(0), *views)["params"])
        rest = {k: v for k, v in params.items() if k != "prototypes"}
        return (params, model.apply({"params": params}, *views),
                [model.apply({"params": params}, v, method=model.embed) for v in views],
                without.apply({"params": rest}, *views[:2])[0],
                model.apply({"params": params}, views[0], method=model.features))

    params, (x, y), z, plain_x, features = outputs(views)
    kernel = params["prototypes"]["kernel"]
    c = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    assert x.shape == (3, 5) and y.shape == (3, 2, 5) and np.max(np.abs(x)) <= 1 + 1e-6
    np.testing.assert_allclose(x, z[0] @ c, atol=1e-6)
    np.testing.assert_allclose(y, np.stack([z[1] @ c, z[2] @ c], axis=1), atol=1e-6)
    np.testing.assert_array_equal(plain_x, z[0])  # without prototypes: the unit embeddings
    tower = params["encoder"]["dense"]
    np.testing.assert_allclose(features, views[0] @ tower["kernel"] + tower["bias"], atol=1e-6)


def test_small_crops_draw_views_three_on_and_leave_the_global_views():
    picture = np.random.default_rng(0).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    big = augment.SimCLRAugment(size=8, crop_scale=(0.9, 1.0), blur_probability=0.0,
                                jitter_probability=0.0, grayscale_probability=0.0,
                                flip_probability=0.0)
    small = augment.SimCLRAugment(size=8, crop_scale=(0.1, 0.1), blur_probability=0.0,
                                  jitter_probability=0.0, grayscale_probability=0.0,
                                  flip_probability=0.0)
    record = {"image": picture, "label": 1}
    plain = examples.TwoViewExample(big, num_views=4)(record, np.random.default_rng(3))
    multi = examples.TwoViewExample(big, num_views=4, small_augment=small)(
        record, np.random.default_rng(3))
    for name in ("view1", "view2"):
        np.testing.assert_array_equal(multi[name], plain[name])
    rng = np.random.default_rng(3)
    big(picture, rng), big(picture, rng)
    np.testing.assert_array_equal(multi["view3"], examples.image_ops.normalize(small(picture, rng)))
    assert not np.array_equal(multi["view3"], plain["view3"])
    # From the config: data.small_crop_scale gives views 3..V their own area range.
    config = _config(num_views=4)
    config.data.image_size = 8  # no source to read the side from
    assert from_config.make_transform(config, None).small_augment is None
    config.data.small_crop_scale = (0.2, 0.5)
    transform = from_config.make_transform(config, None)
    assert transform.small_augment == dataclasses.replace(transform.augment,
                                                          crop_scale=(0.2, 0.5))


@pytest.mark.parametrize("fields,message", [
    ({"loss": "swav"}, "reads prototype scores: it needs model.kind 'two_view' and "
                       "model.num_prototypes > 0"),
    ({"model.num_prototypes": 30}, "config.model.num_prototypes=30 gives the loss prototype "
                                   "scores, which config.loss='clip' does not read"),
    ({"model.num_prototypes": -1}, "config.model.num_prototypes=-1: must be an integer >= 0"),
    ({"data.small_crop_scale": (0.5, 0.2)}, "config.data.small_crop_scale=(0.5, 0.2): must be"),
    ({"data.small_crop_scale": (0.1, 0.3)}, "needs model.kind 'two_view' and model.num_views >= 3"),
])
def test_config_mistakes_are_one_line(fields, message):
    config = _config()
    for path, value in fields.items():
        *parents, leaf = path.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate.check(config)


@pytest.mark.slow  # a training run with evaluation: ~25 s on 2 shared cores
def test_trains_with_prototypes_and_multi_crop(tmp_path, digits_data_dir):
    config = _config(num_prototypes=12, num_views=4)
    config.loss = "swav"
    config.data.small_crop_scale = (0.2, 0.5)
    config.total_steps = 2
    config.progress_bar = config.plots = False
    config.eval.geometry = False
    config.data.data_dir = digits_data_dir
    summary = loop.train_and_evaluate(config, str(tmp_path))
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2] and all(math.isfinite(l["loss"]) for l in lines)
    # At initialisation the scores are near-uniform: the loss is about log K.
    assert abs(lines[0]["loss"] - math.log(12)) < 1.0
    assert 0.0 <= summary["knn_top1"] <= 1.0
