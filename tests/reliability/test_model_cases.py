"""Model cases that used to fail in training: a ResNet (batch norm) as the CLIP image tower,
and a temperature that drifts past CLIP's cap of 100 (which had no gradient left to return)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import task as task_lib
from contrastive.losses import clip_loss
from contrastive.train import loop
from tests.train.helpers import tiny_config


def test_a_resnet_image_tower_trains_clip_and_evaluates_zero_shot(digits_data_dir, tmp_path):
    config = tiny_config(digits_data_dir, total_steps=2, checkpoint_every=0)
    config.model.image_tower = "resnet"
    config.model.image_variant = "18"
    config.model.image_options = {"width": 4, "small_inputs": True, "stage_sizes": (1, 1)}
    config.eval.update(retrieval=False, geometry=False, knn=False)  # zero-shot is enough
    summary = loop.train_and_evaluate(config, str(tmp_path))
    assert summary["step"] == 2 and np.isfinite(summary["loss"])
    assert 0 <= summary["zero_shot_top1"] <= 1


def _clip_task():
    return task_lib.make_task(tiny_config("unused"), vocab_size=64)  # max_scale 100


def test_constrain_clamps_log_scale_at_the_cap_and_leaves_the_rest():
    task = _clip_task()
    cap = np.log(task.max_scale)
    params = {"log_scale": jnp.float32(cap + 0.5), "bias": jnp.float32(-10.0),
              "w": jnp.ones(3)}
    clamped = task.constrain(params)
    assert float(clamped["log_scale"]) == pytest.approx(cap, rel=1e-7)
    assert clamped["w"] is params["w"] and clamped["bias"] is params["bias"]
    below = {**params, "log_scale": jnp.float32(cap - 0.5)}
    assert task.constrain(below)["log_scale"] == below["log_scale"]


def test_the_gradient_of_the_temperature_at_the_cap_is_the_dense_one():
    """At the cap the loss still pulls on log_scale: d loss / d log_scale = scale * d loss /
    d scale, checked against a float64 NumPy central difference of the CLIP loss."""
    task = _clip_task()
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((16, 8)) for _ in range(2))
    x, y = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (x, y))
    params = task.constrain({"log_scale": jnp.float32(np.log(task.max_scale) + 1.0),
                             "bias": jnp.float32(0.0)})

    def loss(p):
        scale, _ = task.scale_and_bias(p)
        return clip_loss(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), scale)

    grad = float(jax.grad(loss)(params)["log_scale"])

    def dense(log_scale):  # symmetric InfoNCE in float64
        s = np.exp(log_scale) * x @ y.T
        rows = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1) - np.diag(s)
        cols = np.log(np.exp(s - s.max(0, keepdims=True)).sum(0)) + s.max(0) - np.diag(s)
        return (rows.mean() + cols.mean()) / 2

    at = float(params["log_scale"])
    expected = (dense(at + 1e-6) - dense(at - 1e-6)) / 2e-6
    assert grad != 0.0
    assert grad == pytest.approx(expected, rel=1e-3, abs=1e-6)
