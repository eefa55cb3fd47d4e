"""model.learn_temperature=False: the temperature stays at temperature_init while training."""
import json

import pytest

from configs import common
from contrastive import task as task_lib
from contrastive.train import loop
from tests.train.helpers import tiny_config


def _temperatures(workdir) -> list[float]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["temperature"] for line in lines]


@pytest.mark.parametrize("learn", [False, True], ids=["fixed", "learnable"])
def test_temperature_moves_only_when_learnable(tmp_path, digits_data_dir, learn):
    config = tiny_config(digits_data_dir, total_steps=4, checkpoint_every=0,
                         model__learn_temperature=learn, model__temperature_init=0.2)
    config.eval.zero_shot = False
    loop.train_and_evaluate(config, str(tmp_path))
    # Each step logs the temperature it trained with, i.e. before its update.
    temperatures = _temperatures(tmp_path)
    assert temperatures[0] == pytest.approx(0.2, rel=1e-6)
    if learn:
        assert abs(temperatures[-1] - 0.2) > 1e-5
    else:
        assert temperatures == [temperatures[0]] * len(temperatures)


def test_a_fixed_temperature_below_the_scale_clip_is_an_error():
    config = common.base_config()
    config.model.learn_temperature = False
    config.model.temperature_init = 0.005
    with pytest.raises(ValueError, match="max_scale"):
        task_lib.make_task(config, vocab_size=64)
