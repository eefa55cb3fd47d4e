"""python -m contrastive.evaluate on a saved checkpoint: the same figures the run computed in
training at that step, plus the linear probe; and one-line errors for mistakes."""
import json
import shutil
import subprocess
import sys

import pytest

from contrastive.evaluate import standalone
from contrastive.train import records
from tests.train.helpers import ROOT, device_env


def training_evaluation(workdir, step):
    (line,) = [r for r in records.read_jsonl(str(workdir / "eval.jsonl")) if r["step"] == step]
    return {k: v for k, v in line.items() if k not in ("step", "wall_time_s")}


def assert_same_figures(evaluated, trained):
    assert set(trained) < set(evaluated)
    for name, value in trained.items():
        assert evaluated[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def evaluate_cli(*args):
    return subprocess.run([sys.executable, "-m", "contrastive.evaluate", *args], cwd=ROOT,
                          env=device_env(1), capture_output=True, text=True, timeout=300)


def test_the_latest_checkpoint_reproduces_its_training_evaluation(trained_run):
    result = evaluate_cli(f"--workdir={trained_run}")
    assert result.returncode == 0, result.stderr
    written = json.loads((trained_run / "evaluate_step4.json").read_text())
    assert written["step"] == 4
    metrics = written["metrics"]
    assert_same_figures(metrics, training_evaluation(trained_run, 4))
    for name in ("zero_shot_top1", "i2t_r@10", "t2i_r@1", "modality_gap", "knn_weighted_top1",
                 "linear_probe_top1", "linear_probe_l2"):
        assert name in metrics
    assert "| linear_probe_top1" in result.stdout
    assert f" {metrics['zero_shot_top1']:.4f} |" in result.stdout


def test_an_older_step_and_another_json_path(trained_run, tmp_path):
    result = evaluate_cli(f"--workdir={trained_run}", "--step=2", f"--json={tmp_path}/out.json")
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["step"] == 2
    assert_same_figures(written["metrics"], training_evaluation(trained_run, 2))


def test_a_missing_step_is_one_line_listing_the_available_ones(trained_run):
    result = evaluate_cli(f"--workdir={trained_run}", "--step=3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no checkpoint at step 3 ")
    assert result.stderr.strip().endswith("available steps: 2, 4")
    assert "Traceback" not in result.stderr


def test_a_missing_workdir_or_checkpoint_is_a_clear_error(trained_run, tmp_path):
    with pytest.raises(standalone.EvaluationError, match="does not exist"):
        standalone.evaluate_checkpoint(str(tmp_path / "nowhere"))
    with pytest.raises(standalone.EvaluationError, match="has no config.json"):
        standalone.evaluate_checkpoint(str(tmp_path))
    shutil.copy(trained_run / "config.json", tmp_path / "config.json")
    with pytest.raises(standalone.EvaluationError, match="no checkpoint in .*checkpoints"):
        standalone.evaluate_checkpoint(str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()  # evaluating creates nothing


def test_eval_classes_missing_from_the_prompts_are_named(trained_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained_run, workdir)
    config = json.loads((workdir / "config.json").read_text())
    config["eval"]["templates"] = ["a photo of the digit {}"]
    config["eval"]["class_names"] = ["zero", "one", "two", "three", "four", "five", "six",
                                     "seven"]
    (workdir / "config.json").write_text(json.dumps(config))
    with pytest.raises(standalone.EvaluationError,
                       match=r"2 classes missing from the prompts .*8 \('eight'\), 9 \('nine'\)"):
        standalone.evaluate_checkpoint(str(workdir))


def test_table_is_aligned():
    table = standalone.format_table({"a": 0.5, "longer_name": -12.25, "tiny": 2e-5}, "title")
    lines = table.splitlines()
    assert lines[0] == "title"
    assert len({len(line) for line in lines[1:]}) == 1  # every row the same width
    assert lines[3] == "| a           |   0.5000 |"
    assert lines[5] == "| tiny        |    2e-05 |"


@pytest.mark.slow  # two full evaluations in-process on top of the trained run
def test_a_weights_file_evaluates_like_the_checkpoint_it_came_from(trained_run, tmp_path):
    """evaluate_pretrained on the run's params written as a flat safetensors file gives the
    checkpoint's figures exactly (same process, same mesh); a misfit file is one line."""
    import jax
    import numpy as np

    from contrastive import convert, parallel
    from contrastive import task as task_lib
    from contrastive.data import from_config as data_lib

    config = standalone.load_run_config(str(trained_run))
    mesh, rules = parallel.make_mesh({"data": -1}), parallel.with_overrides({})
    tokenizer = data_lib.make_tokenizer(config)
    task = task_lib.make_task(config, tokenizer.vocab_size, tokenizer.pad_id)
    target = standalone._abstract_variables(config, task, tokenizer, mesh, rules)
    checkpoints = standalone._checkpoints(str(trained_run))
    state = standalone._restore_variables(checkpoints, 4, target)
    checkpoints.close()
    path = tmp_path / "weights.safetensors"
    convert.save_state_dict(convert.flatten(jax.tree.map(np.asarray, state.params)), path)

    step, expected = standalone.evaluate_checkpoint(str(trained_run), 4, {"data": -1})
    config = standalone._every_evaluator(config)
    config.model.pretrained, config.model.pretrained_format = str(path), "flat"
    assert standalone.evaluate_pretrained(config, {"data": -1}) == expected
    convert.save_state_dict({"image_tower/cls": np.zeros((1, 1, 3), np.float32)}, path)
    with pytest.raises(standalone.EvaluationError, match="do not fit the model"):
        standalone.evaluate_pretrained(config, {"data": -1})
