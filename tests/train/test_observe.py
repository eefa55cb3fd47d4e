"""What a run shows of itself: TensorBoard event files (read back by TensorBoard's own reader),
a profiler trace of the chosen steps, and per-step timing and MFU in metrics.jsonl."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from contrastive import parallel
from contrastive.errors import UserError
from contrastive.train import events, loop, observe
from tests.train.helpers import tensorboard_scalars, tensorboard_text, tiny_config


def test_peaks_come_from_the_table_and_unknown_kinds_have_none():
    assert observe.peak_flops("TPU v5 lite") == 197e12
    assert observe.peak_flops("TPU v5") == 459e12  # v5p
    assert observe.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert observe.peak_flops("NVIDIA H100 PCIe") == 756e12  # before the plain "H100"
    assert observe.peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    for unknown in ("cpu", "TPU v4 lite", "NVIDIA GeForce RTX 4090", "Tesla V100-SXM2-16GB"):
        assert observe.peak_flops(unknown) is None


def test_step_flops_are_per_device_flops_of_the_compiled_program():
    # A (256 x 64) @ (64 x 48) matmul with rows split over the 8 devices: 2 m k n / 8 each.
    mesh = parallel.make_mesh({"data": -1})
    rows = NamedSharding(mesh, PartitionSpec(("data", "fsdp", "model")))
    matmul = jax.jit(lambda a, b: a @ b, in_shardings=(rows, NamedSharding(mesh, PartitionSpec())))
    compiled = matmul.lower(jnp.ones((256, 64)), jnp.ones((64, 48))).compile()
    assert observe.step_flops(compiled) == pytest.approx(2 * 256 * 64 * 48 / mesh.size, rel=0.05)


def test_loops_that_hide_flops_are_recognised(digits_data_dir):
    config = tiny_config(digits_data_dir)
    assert not observe.loops_hide_flops(config)
    assert observe.loops_hide_flops(tiny_config(digits_data_dir, num_microbatches=2))
    config.model.image_options = {**dict(config.model.image_options), "scan": True}
    assert observe.loops_hide_flops(config)


@pytest.mark.parametrize("spec", ["20", "25:20", "0:3", "a:b", "3:3"])
def test_a_bad_profile_range_is_a_clear_error(spec):
    with pytest.raises(ValueError, match="config.profile_steps"):
        observe.parse_profile_steps(spec)
    assert observe.parse_profile_steps("") is None
    assert observe.parse_profile_steps("20:25") == (20, 25)


def test_a_bad_profile_range_stops_the_run_before_anything_is_written(tmp_path, digits_data_dir):
    with pytest.raises(UserError, match="config.profile_steps must be 'START:END'"):
        loop.train_and_evaluate(tiny_config(digits_data_dir, profile_steps="25"),
                                str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_resumed_writer_replaces_the_steps_after_its_checkpoint(tmp_path, digits_data_dir):
    config = tiny_config(digits_data_dir)
    first = events.EventWriter(str(tmp_path), 0, config)
    first.train([{"step": s, "loss": float(s), "data_source": "x"} for s in range(1, 7)])
    first.evaluation(4, {"i2t_r@1": 0.5})
    first.close()
    (path,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    with open(path, "ab") as f:  # a record cut short by a killed writer
        f.write(b"\x40\x00\x00\x00\x00\x00\x00\x00\x01\x02")
    # Killed after step 6, resumed from the checkpoint at step 4: steps 5 and 6 are redone.
    second = events.EventWriter(str(tmp_path), 4, config)
    second.train([{"step": s, "loss": 10.0 * s} for s in (5, 6)])
    second.close()

    assert tensorboard_scalars(tmp_path, "train/loss") == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 50.0), (6, 60.0)]
    assert tensorboard_scalars(tmp_path, "eval/i2t_r_1") == [(4, 0.5)]
    assert [s for s, _ in tensorboard_text(tmp_path, "config")] == [0, 4]
    assert json.loads(tensorboard_text(tmp_path, "config")[0][1])["batch_size"] == 32
    assert events.truncate_after(str(tmp_path / "tensorboard"), 4) == 2


def test_the_meter_splits_an_interval_and_divides_by_the_peak(digits_data_dir, monkeypatch):
    monkeypatch.setattr(observe, "peak_flops", lambda kind: 1e6)  # a made-up peak for the CPU
    mesh = parallel.make_mesh({"data": -1})
    rows = NamedSharding(mesh, PartitionSpec(("data", "fsdp", "model")))
    matmul = jax.jit(lambda a, b: a @ b, in_shardings=(rows, NamedSharding(mesh, PartitionSpec())))
    meter = observe.Meter(tiny_config(digits_data_dir), mesh,
                          matmul.lower(jnp.ones((256, 64)), jnp.ones((64, 48))).compile())
    timing = meter.timing([0.01, 0.03], 0.5)  # two steps of 32 in 0.5 s, 0.04 s of it waiting
    per_device = 2 * 256 * 64 * 48 / 8
    assert timing == pytest.approx({
        "examples_per_sec": 128.0, "examples_per_sec_per_device": 16.0, "step_time_s": 0.25,
        "device_time_s": 0.23, "data_wait_share": 0.08,
        "tflops_per_device": per_device / 0.25 / 1e12, "mfu": per_device / 0.25 / 1e6},
        rel=0.05)
    assert observe.Meter.postfix(timing) == {"ex_per_s": "128", "wait": "8%", "mfu": "78.6%"}


@pytest.mark.slow  # a 3-step run (~25-50 s here); test_smoke and test_equivalence cover its parts
def test_a_run_logs_timing_mfu_tensorboard_and_a_profile(tmp_path, digits_data_dir, monkeypatch):
    peak = 2e9  # a made-up peak for the CPU (the real table has none), to check the arithmetic
    monkeypatch.setattr(observe, "peak_flops", lambda kind: peak)
    config = tiny_config(digits_data_dir, total_steps=3, checkpoint_every=0, profile_steps="2:3")
    loop.train_and_evaluate(config, str(tmp_path))

    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    flops = {round(l["tflops_per_device"] * 1e12 * l["step_time_s"]) for l in lines}
    assert len(flops) == 1 and flops.pop() > 1e5  # one compiled step, the same FLOPs each time
    for l in lines:  # one step per log interval (log_every=1)
        assert l["device_time_s"] + l["data_wait_s"] == pytest.approx(l["step_time_s"], abs=2e-6)
        assert l["data_wait_share"] == pytest.approx(l["data_wait_s"] / l["step_time_s"],
                                                     abs=1e-4)
        assert l["examples_per_sec"] == pytest.approx(config.batch_size / l["step_time_s"])
        assert l["examples_per_sec_per_device"] == pytest.approx(l["examples_per_sec"] / 8)
        assert l["mfu"] == pytest.approx(l["tflops_per_device"] * 1e12 / peak)

    # TensorBoard: every step once, the values of metrics.jsonl; the final evaluation.
    assert tensorboard_scalars(tmp_path, "train/loss") == [
        (l["step"], pytest.approx(l["loss"], rel=1e-6)) for l in lines]
    assert [s for s, _ in tensorboard_scalars(tmp_path, "train/mfu")] == [1, 2, 3]
    evaluation = json.loads((tmp_path / "eval.jsonl").read_text())
    assert tensorboard_scalars(tmp_path, "eval/zero_shot_top1") == [
        (3, pytest.approx(evaluation["zero_shot_top1"], rel=1e-6))]
    traces = list((tmp_path / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
    assert list(traces[0].parent.glob("*trace.json.gz"))  # Perfetto's format too
    assert math.isfinite(lines[-1]["loss"]) and np.isfinite(lines[-1]["mfu"])
