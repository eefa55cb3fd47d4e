"""The CLI: flags, config files with arguments, and the error for a misspelled field."""
import subprocess
import sys


from tests.train.helpers import ROOT, device_env


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "contrastive.main", *args], cwd=ROOT,
                          env=device_env(1), capture_output=True, text=True, timeout=120)


def test_unknown_config_field_is_one_clear_error_naming_the_valid_ones(tmp_path):
    result = run_cli("--config=configs/digits_clip.py", f"--workdir={tmp_path}",
                     "--config.optimizer.learning_rat=0.1")
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "Unknown config field 'optimizer.learning_rat'" in message
    assert "Did you mean: optimizer.learning_rate" in message
    assert "optimizer.warmup_steps" in message  # the valid names beside it
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "metrics.jsonl").exists()


def test_unknown_config_argument_lists_the_known_ones(tmp_path):
    result = run_cli("--config=configs/clip.py:vit_b99", f"--workdir={tmp_path}")
    assert result.returncode != 0
    assert "unknown config argument 'vit_b99'" in result.stderr
    assert "vit_b16" in result.stderr


def test_workdir_is_required():
    result = run_cli("--config=configs/digits_clip.py")
    assert result.returncode != 0
    assert "workdir" in result.stderr


def test_a_renamed_field_is_refused_with_its_new_name(tmp_path):
    result = run_cli("--config=configs/digits_clip.py", f"--workdir={tmp_path}",
                     "--config.model.image_size=mu/2")
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "'model.image_size' was renamed 'model.image_variant'" in message
    assert "Traceback" not in result.stderr
    assert not tmp_path.joinpath("config.json").exists()
