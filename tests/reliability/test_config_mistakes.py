"""A config mistake is one line naming the field (exit status 2 from the command line), found
before anything is written or read."""
import json
import subprocess
import sys

import pytest

from contrastive.errors import UserError
from contrastive.train import loop
from tests.train.helpers import ROOT, cli_flags, device_env

CASES = [  # (field, value, what the message must say)
    ("total_steps", 0, "config.total_steps=0: must be an integer >= 1"),
    ("total_steps", -5, "config.total_steps=-5: must be an integer >= 1"),
    ("optimizer.learning_rate", 0.0, "config.optimizer.learning_rate=0.0: must be a number > 0"),
    ("optimizer.learning_rate", -1e-3, "config.optimizer.learning_rate=-0.001: must be"),
    ("num_microbatches", 0, "config.num_microbatches=0: must be an integer >= 1"),
    ("loss", "clipp", "config.loss: unknown loss 'clipp' (did you mean 'clip'?)"),
    ("loss_options", {"betta": 1.0}, "config.loss_options: unknown option 'betta' for loss"),
    ("mesh", {"data": 3}, "needs 3 devices, but there are 8"),
    ("batch_size", 30, "config.batch_size=30 must divide into num_microbatches 1 x 8"),
    ("model.image_tower", "vgg", "config.model.image_tower='vgg': must be one of 'vit', 'resnet'"),
    ("data.tokenizer", "/no/such.model", "config.data.tokenizer: no such file /no/such.model"),
    ("profile_steps", "25:20", "config.profile_steps must be 'START:END' with 1 <= START < END"),
    ("model.num_views", 1, "config.model.num_views=1: must be an integer >= 2"),
]


def _set(config, path, value):
    *parents, leaf = path.split(".")
    target = config
    for parent in parents:
        target = target[parent]
    target[leaf] = value


@pytest.mark.parametrize("field,value,message", CASES, ids=[f"{f}={v}" for f, v, _ in CASES])
def test_a_bad_field_is_one_line_naming_it_and_nothing_is_written(run_config, tmp_path, field,
                                                                  value, message):
    config = run_config.copy_and_resolve_references()
    _set(config, field, value)
    with pytest.raises(UserError) as raised:
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name,fields,message", [
    ("mnist", {"data_dir": "/no/such/dir"}, "config.data.data_dir: no such directory /no/such/dir"),
    ("webdataset", {"shards": "/no/such/{000..003}.tar"},
     "config.data.shards: 4 of 4 shards do not exist, the first /no/such/000.tar"),
    ("csv", {"csv_path": "/no/such.csv"}, "config.data.csv_path: no such file /no/such.csv"),
])
def test_missing_data_is_one_line_before_the_workdir_exists(run_config, tmp_path, name, fields,
                                                            message):
    config = run_config.copy_and_resolve_references()
    config.data.name = name
    config.data.update(fields)
    with pytest.raises(UserError, match=message.replace("{", r"\{").replace("}", r"\}")):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_frozen_pattern_that_matches_nothing_is_one_line(run_config, tmp_path):
    """Checked against the model's parameter paths, so only once the model is built."""
    config = run_config.copy_and_resolve_references()
    config.optimizer.frozen_patterns = ("imgae_tower/.*",)
    with pytest.raises(UserError, match="config.optimizer.frozen_patterns: 'imgae_tower/.*' "
                                        "matches no parameter path"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "config.json").exists()


def _cli(*args, module="contrastive.main"):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=device_env(8),
                          capture_output=True, text=True, timeout=300)


def _one_line(result, code: int) -> str:
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("args,message", [
    (["--config.total_steps=forty"],
     "error: flag --config.total_steps=forty: invalid literal for int() with base 10: 'forty'"),
    (["--config=configs/clip.py:vit_b99"], "unknown config argument 'vit_b99'; known: "),
    (["--config=configs/digits_clip.pyy"],
     "error: --config=configs/digits_clip.pyy: no such config file 'configs/digits_clip.pyy'"),
    (["--config.optimizer.learning_rate=0"], "error: config.optimizer.learning_rate=0.0: must be"),
], ids=["type", "arg", "file", "range"])
def test_the_command_line_says_one_line_with_status_2(copy_of_finished, run_config, args,
                                                      message):
    config_json = (copy_of_finished / "config.json").read_bytes()
    flags = cli_flags(run_config)
    config_file = next((a for a in args if a.startswith("--config=")), "--config=configs/digits_clip.py")
    result = _cli(config_file, f"--workdir={copy_of_finished}", *flags,
                  *[a for a in args if not a.startswith("--config=")])
    assert message in _one_line(result, 2)
    assert (copy_of_finished / "config.json").read_bytes() == config_json  # untouched


def test_debug_shows_the_traceback(tmp_path):
    result = _cli("--config=configs/digits_clip.py", f"--workdir={tmp_path}",
                  "--config.total_steps=forty", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_the_evaluator_says_a_bad_mesh_in_one_line(finished_run):
    result = _cli(f"--workdir={finished_run}", '--mesh={"data": 3}',
                  module="contrastive.evaluate")
    assert "needs 3 devices" in _one_line(result, 2)
    json.loads((finished_run / "summary.json").read_text())  # the run is untouched
