"""More than two views through the two-view task (model.num_views): the data, the siamese
model, the loss records and a short training run."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import digits_simclr
from contrastive import parallel, task as task_lib
from contrastive.data import augment, examples
from contrastive.losses import reference
from contrastive.losses.cases import rel_err
from contrastive.train import loop
from contrastive.train import losses


def test_three_views_are_drawn_after_the_two_of_two_views():
    picture = np.random.default_rng(0).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    augmenter = augment.SimCLRAugment(size=8, blur_probability=0.0)
    three = examples.TwoViewExample(augmenter, num_views=3)(
        {"image": picture, "label": 1}, np.random.default_rng(4))
    assert set(three) == {"view1", "view2", "view3", "label"}
    first, second = augmenter.two_views(picture, np.random.default_rng(4))
    np.testing.assert_array_equal(three["view1"], examples.image_ops.normalize(first))
    np.testing.assert_array_equal(three["view2"], examples.image_ops.normalize(second))
    assert not np.array_equal(three["view3"], three["view2"])


def _task_and_batch(num_views, n=6):
    config = digits_simclr.get_config("runlocal")
    config.model.num_views = num_views
    config.model.image_tower, config.model.image_variant = "vit", "mu/2"  # compiles fast
    config.model.image_options = {"width": 16, "mlp_dim": 32, "num_heads": 2}
    task = task_lib.make_task(config)
    rng = np.random.default_rng(1)
    batch = {f"view{v + 1}": jnp.asarray(rng.normal(size=(n, 8, 8, 1)), jnp.float32)
             for v in range(num_views)}
    variables = jax.jit(lambda k: task_lib.init_variables(task, k, task.inputs(batch)))(
        jax.random.key(0))
    params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
    return task, batch, jax.tree.map(lambda a: getattr(a, "value", a), params,
                                     is_leaf=lambda a: hasattr(a, "value")), state


def test_four_views_reach_the_loss_as_the_multi_view_objective():
    """The records' losses of the task's (x, y) with V = 4 equal the dense multi-view losses of
    the four views embedded one at a time (eval mode: batch norm uses its running statistics),
    and on the 8-device ring equal one device."""
    task, batch, params, state = _task_and_batch(4)
    (x, y), _ = jax.jit(lambda b: task.embed(params, state, b, train=False))(batch)
    assert x.shape == (6, 32) and y.shape == (6, 3, 32)
    embed = jax.jit(lambda v: task.model.apply({"params": params, **state}, v,
                                               method=task.model.embed))
    views = np.stack([embed(batch[f"view{v + 1}"]) for v in range(4)]).astype(np.float64)
    one = parallel.make_mesh({"data": 1}, devices=jax.devices()[:1])
    eight = parallel.make_mesh({"data": 2, "fsdp": 4})
    labels = jnp.asarray([0, 1, 0, 2, 1, 2], jnp.int32)
    with jax.enable_x64(True):
        wants = {"ntxent": reference.ntxent_loss_dense(views, 5.0),
                 "supcon": reference.supcon_loss_dense(views.reshape(24, 32),
                                                       np.tile(labels, 4), 5.0)}
    x16, y16, labels16 = (jnp.concatenate([a, a, a[:4]]) for a in (x, y, labels))
    for name, want in wants.items():
        got, _ = losses.bind(name, one, block_size=4)(x, y, 5.0, 0.0, labels, {})
        assert rel_err(got, want, 1.0) < 1e-5, name
        args = (x16, y16, 5.0, 0.0, labels16, {})  # 16 rows: 2 per device
        single = jax.jit(losses.bind(name, one, block_size=4))(*args)[0]
        ring = jax.jit(losses.bind(name, eight, block_size=1))(*args)[0]
        assert rel_err(ring, single, 1.0) < 1e-5, name


def test_a_two_view_loss_given_three_views_and_a_bad_num_views_are_clear_errors():
    one = parallel.make_mesh({"data": 1}, devices=jax.devices()[:1])
    x, y = jnp.ones((4, 8)), jnp.ones((4, 2, 8))
    with pytest.raises(ValueError, match=r"model.num_views = 3 needs a multi-view loss "
                                         r"\(ntxent, supcon, gram, swav\)"):
        losses.bind("clip", one)(x, y, 1.0, 0.0, None, {})
    config = digits_simclr.get_config("runlocal")
    config.model.num_views = 1
    with pytest.raises(ValueError, match="model.num_views must be an int >= 2"):
        task_lib.make_task(config)


@pytest.mark.slow  # a training run with evaluation: ~1 min on 2 shared cores
def test_digits_simclr_trains_with_three_views(tmp_path, digits_data_dir):
    config = digits_simclr.get_config("runlocal")
    config.loss = "ntxent"
    config.total_steps = 2
    config.progress_bar = False
    config.plots = False
    config.data.data_dir = digits_data_dir
    config.model.num_views = 3
    summary = loop.train_and_evaluate(config, str(tmp_path))
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2] and all(math.isfinite(l["loss"]) for l in lines)
    # Random embeddings: each of the 3B anchors has 3B - 1 candidates, 2 of them positives.
    batch = config.batch_size
    assert abs(lines[0]["loss"] - math.log(3 * batch - 1)) < 1.0
    assert 0.0 <= summary["knn_top1"] <= 1.0
