"""Every loss a config can name: the trainer's record on one device and on the 8-device ring
agree, options are checked against the record, and iSogCLR's per-example state is gathered,
updated and checkpointed by the trainer."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import parallel
from contrastive.losses import isogclr
from contrastive.errors import UserError
from contrastive.train import losses, loop
from contrastive.losses.cases import paired, rel_err
from tests.train.helpers import tiny_config

OPTIONS = {"dcl": {"sigma": 0.5}, "hard_negative": {"beta": 0.5, "tau_plus": 0.05},
           "auc": {"margin": 0.2}, "isogclr": {"gamma": 0.5},
           "z_loss": {"a": 0.5, "b": 2.0}}


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_each_loss_on_one_device_equals_the_ring(name):
    n = 32
    x, y = (jnp.asarray(a, jnp.float32) for a in paired(1, n))
    labels = jnp.asarray(np.arange(n) % 5, jnp.int32)
    one = parallel.make_mesh({"data": 1}, devices=jax.devices()[:1])
    eight = parallel.make_mesh({"data": 2, "fsdp": 4})
    single = losses.bind(name, one, block_size=8, options=OPTIONS.get(name))
    ring = losses.bind(name, eight, block_size=2, options=OPTIONS.get(name))
    rows = losses.gather(single.initial_state(n), jnp.arange(n))
    args = (x, y, jnp.float32(10.0), jnp.float32(-3.0), labels, rows)
    want = jax.jit(single)(*args)
    got = jax.jit(ring)(*args)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert rel_err(g, w, 1.0) < 1e-5


def test_unknown_loss_and_unknown_option_are_clear_errors():
    one = parallel.make_mesh({"data": 1}, devices=jax.devices()[:1])
    with pytest.raises(ValueError, match=r"unknown loss 'clipp' \(did you mean 'clip'\?\); "
                                         r"choose one of clip, siglip, "):
        losses.bind("clipp", one)
    with pytest.raises(ValueError, match=r"unknown option 'betta' for loss 'hard_negative' "
                                         r"\(did you mean 'beta'\?\); its options \(with "
                                         r"defaults\): beta=1.0, tau_plus=0.0"):
        losses.bind("hard_negative", one, options={"betta": 1})


def test_a_record_lists_the_options_of_its_function_and_of_its_state():
    assert losses.get("dcl").options() == {"sigma": None}
    assert losses.get("clip").options() == {"impl": "xla", "label_smoothing": 0.0}
    assert losses.get("isogclr").options() == {
        "tau_init": 0.07, "tau_lr": 1e-2, "tau_min": 0.005, "tau_max": 1.0,
        "gamma": 0.8, "rho": 6.0}
    # A stateless loss starts with no per-example state and leaves rows untouched.
    assert losses.get("clip").state.init(10) == {}


def test_per_example_update_writes_only_the_batch_rows():
    state = isogclr.initial_state(10, tau_init=0.1)
    index = jnp.array([3, 7])
    rows = losses.gather(state, index)
    grads = {"tau_x": jnp.array([1.0, -1.0]), "tau_y": jnp.array([0.0, 100.0])}
    estimates = {"log_u_x": jnp.array([0.5, 0.25]), "log_u_y": jnp.array([1.0, 2.0])}
    bound = losses.bind("isogclr", parallel.make_mesh({"data": 1}, devices=jax.devices()[:1]),
                        options={"tau_lr": 0.01, "tau_min": 0.05, "tau_max": 0.5})
    new_rows, metrics = bound.update_state(rows, grads, estimates)
    new = losses.scatter(state, index, new_rows)
    np.testing.assert_allclose(new["tau_x"][index], [0.1 - 0.02, 0.1 + 0.02], rtol=1e-6)
    np.testing.assert_allclose(new["tau_y"][index], [0.1, 0.05])  # clipped at tau_min
    np.testing.assert_allclose(new["log_u_x"][index], [0.5, 0.25])
    assert float(metrics["mean_tau_y"]) == pytest.approx(0.075)
    others = np.setdiff1d(np.arange(10), index)
    np.testing.assert_array_equal(new["tau_x"][others], state["tau_x"][others])
    assert np.all(np.isneginf(new["log_u_y"][others]))


def test_isogclr_trains_and_resumes_with_its_per_example_state(tmp_path, digits_data_dir):
    config = tiny_config(digits_data_dir, total_steps=2, checkpoint_every=1, loss="isogclr",
                         loss_options={"tau_lr": 0.1})
    summary = loop.train_and_evaluate(config, str(tmp_path))
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2] and all(math.isfinite(l["loss"]) for l in lines)
    # The batch's temperatures moved away from their initial value by their own update.
    tau_init = losses.get("isogclr").options()["tau_init"]
    assert all(l["mean_tau_x"] != pytest.approx(tau_init, rel=1e-4) for l in lines)
    config.total_steps = 3  # resumes from step 2 with the restored per-example state
    assert loop.train_and_evaluate(config, str(tmp_path))["step"] == 3
    assert summary["step"] == 2


def test_a_bad_loss_option_stops_the_run_before_anything_is_written(tmp_path, digits_data_dir):
    config = tiny_config(digits_data_dir, loss="hard_negative", loss_options={"betta": 1.0})
    with pytest.raises(UserError, match="unknown option 'betta' for loss 'hard_negative'"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
