"""Hugging Face `tokenizers` JSON files: the library's own ids, fixed length, truncation that
keeps the end token, pad id looked up."""
import pickle

import numpy as np
import pytest

tokenizers = pytest.importorskip("tokenizers")

from contrastive.data import hf_tokenizer, tokenizer as tokenizer_lib  # noqa: E402

TEXTS = [f"a photo of a {c} {t}" for c in ("red", "blue", "green") for t in ("cat", "dog")]


@pytest.fixture(scope="module")
def json_path(tmp_path_factory):
    from tokenizers import models, pre_tokenizers, processors, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(
        vocab_size=60, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]"]))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    tok.save(str(path))
    return str(path)


def test_ids_are_the_library_ones_padded(json_path):
    oracle = tokenizers.Tokenizer.from_file(json_path)
    tokenizer = tokenizer_lib.from_setting(json_path, max_len=16)
    assert isinstance(tokenizer, hf_tokenizer.HuggingFaceTokenizer)
    pad = oracle.token_to_id("[PAD]")
    assert tokenizer.pad_id == pad and tokenizer.vocab_size == oracle.get_vocab_size()
    ids = oracle.encode(TEXTS[3]).ids
    np.testing.assert_array_equal(tokenizer.encode(TEXTS[3]), ids + [pad] * (16 - len(ids)))
    np.testing.assert_array_equal(tokenizer.encode_batch(TEXTS[:2]),
                                  np.stack([tokenizer.encode(t) for t in TEXTS[:2]]))
    assert tokenizer.decode(tokenizer.encode(TEXTS[3])) == oracle.decode(ids)


def test_truncation_keeps_the_end_token_and_pickles(json_path):
    oracle = tokenizers.Tokenizer.from_file(json_path)
    tokenizer = hf_tokenizer.HuggingFaceTokenizer.from_file(json_path, max_len=5)
    ids = oracle.encode(" ".join(TEXTS)).ids
    np.testing.assert_array_equal(tokenizer.encode(" ".join(TEXTS)), ids[:4] + ids[-1:])
    assert ids[-1] == oracle.token_to_id("[SEP]")
    clone = pickle.loads(pickle.dumps(tokenizer))
    np.testing.assert_array_equal(clone.encode(TEXTS[0]), tokenizer.encode(TEXTS[0]))


def test_missing_tokenizer_file_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="tokenizer file not found: .*nope.json"):
        tokenizer_lib.from_setting(str(tmp_path / "nope.json"), 8)
