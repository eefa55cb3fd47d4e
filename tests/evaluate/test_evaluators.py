"""The in-training evaluator of a two-view (SimCLR) run: its geometry is that of the two fixed
views embedded directly, and its kNN that of the directly embedded features."""
import types

import flax.linen as nn
import jax
import numpy as np
import pytest

from configs import digits_simclr
from contrastive import parallel
from contrastive import task as task_lib
from contrastive.data import from_config
from contrastive.evaluate import geometry, knn, suite


def test_two_view_evaluator_matches_direct_embeddings(digits_data_dir):
    config = digits_simclr.get_config("runlocal")
    config.data.data_dir = digits_data_dir
    config.eval.max_examples = 20  # not a multiple of the 8 batch shards: padding is exercised
    # A one-block ViT compiles in a fraction of the ResNet's time; the evaluator is the same.
    config.model.image_tower, config.model.image_variant = "vit", "mu/2"
    config.model.image_options = {"width": 32, "mlp_dim": 64, "num_heads": 2, "depth": 1}
    mesh, rules = parallel.make_mesh({"data": -1}), parallel.DEFAULT_RULES
    task = task_lib.make_task(config)
    evaluation = from_config.load_eval_split(config, "test", 20, two_views=True)
    train = from_config.load_eval_split(config, "train", 20)
    views = evaluation["views"]
    variables = jax.jit(lambda key: nn.meta.unbox(task.model.init(key, views[:, 0], views[:, 1])))(
        jax.random.PRNGKey(0))
    model_state = dict(variables)
    params = model_state.pop("params")

    evaluate = suite.make_evaluator(config, task, mesh, rules)
    results = evaluate(types.SimpleNamespace(params=params, model_state=model_state))

    both = lambda v: task.embed(params, model_state, {"view1": v[:, 0], "view2": v[:, 1]},
                                train=False)
    (x, y), _ = jax.jit(both)(views)
    for name, value in geometry.geometry_metrics(np.asarray(x), np.asarray(y)).items():
        assert results[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    assert results["cos_positive"] > results["cos_negative"]  # two views of one image agree
    features = jax.jit(task.embed_images)(params, model_state,
                                          np.concatenate([train["images"], evaluation["images"]]))
    reference, queries = np.split(np.asarray(features), [20])
    expected = knn.knn_top1(reference, train["labels"], queries, evaluation["labels"], k=20,
                            temperature=0.07)
    assert results["knn_weighted_top1"] == pytest.approx(expected)
    assert results["knn_top1"] == pytest.approx(
        knn.knn_top1(reference, train["labels"], queries, evaluation["labels"]))
    assert "zero_shot_top1" not in results and "linear_probe_top1" not in results
