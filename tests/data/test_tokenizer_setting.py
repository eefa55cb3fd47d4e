"""The tokenizer is rebuilt from the run's config.json (as `python -m contrastive.evaluate`
does) with the ids training used, for every kind of data.tokenizer."""
import json

import ml_collections
import numpy as np
import pytest

from configs import common
from contrastive.data import tokenizer as tokenizer_lib
from contrastive.data import from_config as data_lib
from tests.data.test_tokenizer import CORPUS


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    directory = tmp_path_factory.mktemp("tokenizers")
    spm = directory / "spm.model"
    spm.write_bytes(tokenizer_lib.train_sentencepiece(CORPUS, vocab_size=40))
    hf = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    hf.save(str(directory / "tok.json"))
    return ["digits", "clip", str(spm), str(directory / "tok.json")]


def test_tokenizer_from_saved_config_matches_training(settings):
    for setting in settings:
        config = common.base_config()
        config.data.tokenizer = setting
        config.data.max_len = 12
        trained = data_lib.make_tokenizer(config)
        saved = ml_collections.ConfigDict(json.loads(config.to_json(indent=1)))
        rebuilt = data_lib.make_tokenizer(saved)
        assert (rebuilt.vocab_size, rebuilt.pad_id) == (trained.vocab_size, trained.pad_id)
        text = "a photo of the digit three" if setting == "digits" else CORPUS[7]
        np.testing.assert_array_equal(rebuilt.encode(text), trained.encode(text))
        assert (trained.encode(text) != trained.pad_id).sum() >= 3
