"""A rerun in a workdir that holds a run: finished is a no-op, an unsafe config change is
refused with the differing fields, a safe one resumes, and no checkpoint is ever deleted."""
import json
import logging
from pathlib import Path

import pytest

from contrastive.errors import UserError
from contrastive.evaluate import standalone
from contrastive.train import loop
from tests.reliability.conftest import STEPS
from tests.train.helpers import losses, max_rel_diff, tensorboard_scalars


def snapshot(workdir: Path) -> dict:
    """Every file of the workdir (the lock file aside) and its bytes."""
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*"))
            if p.is_file() and not p.name.startswith(".lock")}


def test_a_finished_run_rerun_is_a_no_op_that_prints_its_summary(run_config, copy_of_finished,
                                                                 capsys):
    before = snapshot(copy_of_finished)
    summary = loop.train_and_evaluate(run_config, str(copy_of_finished))
    assert summary == json.loads((copy_of_finished / "summary.json").read_text())
    assert summary["step"] == STEPS and summary["loss"] is not None
    assert f"already finished at step {STEPS}; nothing to do" in capsys.readouterr().out
    assert snapshot(copy_of_finished) == before


@pytest.mark.parametrize("field,value,said", [
    ("model.embed_dim", 16, "model.embed_dim: 32 -> 16"),
    ("optimizer.grad_clip_norm", 0.0, "optimizer.grad_clip_norm: 1.0 -> 0.0"),
    ("loss", "siglip", "loss: 'clip' -> 'siglip'"),
])
def test_a_change_of_recipe_is_refused_naming_the_fields(run_config, copy_of_finished, field,
                                                         value, said):
    before = snapshot(copy_of_finished)  # finished or not, the change is said and refused
    config = run_config.copy_and_resolve_references()
    section, _, leaf = field.rpartition(".")
    (config[section] if section else config)[leaf] = value
    config.total_steps = STEPS + 2  # a safe change beside it does not hide the unsafe one
    with pytest.raises(UserError, match="holds a run trained with another config") as raised:
        loop.train_and_evaluate(config, str(copy_of_finished))
    assert said in str(raised.value) and "total_steps" not in str(raised.value)
    assert snapshot(copy_of_finished) == before


def test_a_safe_change_resumes_and_is_said(run_config, copy_of_finished, caplog):
    config = run_config.copy_and_resolve_references()
    config.total_steps = STEPS + 2
    config.log_every = 2
    with caplog.at_level(logging.WARNING):
        summary = loop.train_and_evaluate(config, str(copy_of_finished))
    assert summary["resumed_from"] == STEPS and summary["step"] == STEPS + 2
    assert f"total_steps: {STEPS} -> {STEPS + 2}" in caplog.text and "log_every: 1 -> 2" in caplog.text
    assert len(losses(copy_of_finished)) == STEPS + 2


def test_checkpoints_that_do_not_fit_the_config_are_refused_and_kept(run_config,
                                                                     copy_of_finished):
    # No saved config to compare with (a run from an older version): the restore finds out.
    for name in ("config.json", "summary.json"):
        (copy_of_finished / name).unlink()
    before = snapshot(copy_of_finished)
    config = run_config.copy_and_resolve_references()
    config.model.embed_dim = 16
    with pytest.raises(UserError, match="none of the checkpoints in .* restores into this "
                                        "config's state .*nothing was changed"):
        loop.train_and_evaluate(config, str(copy_of_finished))
    assert snapshot(copy_of_finished) == before


def _corrupt(step_dir: Path) -> None:
    for path in (step_dir / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"not a checkpoint")


def test_a_corrupt_latest_checkpoint_is_moved_aside_and_the_run_resumes(
        run_config, finished_run, copy_of_finished, caplog):
    (copy_of_finished / "summary.json").unlink()  # crashed after its last save
    _corrupt(copy_of_finished / "checkpoints" / str(STEPS))
    with caplog.at_level(logging.WARNING):
        summary = loop.train_and_evaluate(run_config, str(copy_of_finished))
    assert summary["resumed_from"] == STEPS - 2
    aside, = (copy_of_finished / "checkpoints.unrestorable").iterdir()
    assert aside.name.startswith(f"{STEPS}-") and (aside / "state").is_dir()
    assert f"Moved the unrestorable checkpoint of step {STEPS} to {aside}" in caplog.text
    assert max_rel_diff(losses(copy_of_finished), losses(finished_run)) < 1e-5
    # TensorBoard: the redone steps replace the first run's, each step once.
    assert tensorboard_scalars(copy_of_finished, "train/loss") == [
        (i + 1, pytest.approx(v, rel=1e-6)) for i, v in enumerate(losses(copy_of_finished))]
    assert [s for s, _ in tensorboard_scalars(copy_of_finished, "eval/zero_shot_top1")] == [STEPS]


def test_the_evaluator_falls_back_past_a_corrupt_checkpoint(copy_of_finished, capsys):
    _corrupt(copy_of_finished / "checkpoints" / str(STEPS))
    before = snapshot(copy_of_finished)
    step, results = standalone.evaluate_checkpoint(str(copy_of_finished))
    assert step == STEPS - 2 and 0 <= results["zero_shot_top1"] <= 1
    err = capsys.readouterr().err
    assert f"the checkpoint at step {STEPS} cannot be restored" in err and "trying an older" in err
    assert snapshot(copy_of_finished) == before  # the evaluator changes nothing
