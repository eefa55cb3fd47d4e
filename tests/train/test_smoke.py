"""One step end to end on tiny configs: outputs, checkpoints and evaluations exist and make sense."""
import json
import math
from pathlib import Path

import pytest

from configs import digits_siglip, digits_simclr
from contrastive.train import loop
from tests.train.helpers import tensorboard_scalars, tensorboard_text, tiny_config

REQUIRED_METRICS = {"step", "loss", "temperature", "learning_rate", "examples_per_sec",
                    "examples_per_sec_per_device", "step_time_s", "data_wait_s",
                    "device_time_s", "data_wait_share", "tflops_per_device", "mfu"}


def test_one_step_of_digits_clip_writes_every_output(tmp_path, digits_data_dir):
    config = tiny_config(digits_data_dir, total_steps=1, plots=True)
    summary = loop.train_and_evaluate(config, str(tmp_path))

    (record,) = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert REQUIRED_METRICS <= set(record)
    assert record["step"] == 1
    # Random unit embeddings at temperature 0.07: the loss is near log(batch) = 3.47.
    assert abs(record["loss"] - math.log(32)) < 1.0
    assert record["temperature"] == pytest.approx(0.07, rel=1e-5)
    # A one-step run has no room for warm-up: it trains at the peak rate.
    assert record["learning_rate"] == pytest.approx(config.optimizer.learning_rate)
    (evaluation,) = [json.loads(l) for l in (tmp_path / "eval.jsonl").read_text().splitlines()]
    key = next(k for k in evaluation if "zero_shot" in k and "top1" in k)
    assert 0.0 <= evaluation[key] <= 1.0
    assert summary["step"] == 1 and summary[key] == evaluation[key]
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert (tmp_path / "eval.png").stat().st_size > 1000
    assert (tmp_path / "checkpoints" / "1").is_dir()
    # Timing of the finished step; the CPU has no peak FLOP/s in the table: MFU unknown.
    assert 0.0 <= record["data_wait_share"] <= 1.0 and record["tflops_per_device"] > 0
    assert record["device_time_s"] + record["data_wait_s"] == pytest.approx(
        record["step_time_s"], abs=2e-6)
    assert record["mfu"] is None
    # TensorBoard (read back by its own reader): the step, the evaluation, the config.
    assert tensorboard_scalars(tmp_path, "train/loss") == [(1, pytest.approx(record["loss"]))]
    assert tensorboard_scalars(tmp_path, f"eval/{key}") == [(1, pytest.approx(evaluation[key]))]
    assert json.loads(tensorboard_text(tmp_path, "config")[0][1])["total_steps"] == 1


@pytest.mark.parametrize("module", [digits_siglip,
                                    pytest.param(digits_simclr, marks=pytest.mark.slow)],
                         ids=["siglip", "simclr"])
def test_other_digits_configs_train_two_steps(tmp_path, digits_data_dir, module):
    config = module.get_config("runlocal")
    config.total_steps = 2
    config.progress_bar = False
    config.plots = False
    config.data.data_dir = digits_data_dir
    config.profile_steps = "2:3"
    summary = loop.train_and_evaluate(config, str(tmp_path))
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2]
    assert all(math.isfinite(l["loss"]) for l in lines)
    if config.loss == "siglip":  # the bias is learnt and reported
        assert lines[0]["bias"] == pytest.approx(-10.0)
    metric = "zero_shot_top1" if config.model.kind == "image_text" else "knn_top1"
    assert 0.0 <= summary[metric] <= 1.0
    assert Path(tmp_path, "checkpoints", "2").is_dir()
    # profile_steps: a jax.profiler trace of step 2, for TensorBoard's profile tab and Perfetto
    (trace,) = Path(tmp_path, "tensorboard", "plugins", "profile").glob("*/*.xplane.pb")
    assert trace.stat().st_size > 0 and list(trace.parent.glob("*trace.json.gz"))
