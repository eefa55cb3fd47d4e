"""CLIP's BPE gives OpenCLIP's ids (fixtures/clip_tokens.json, written by open_clip's own
tokenize via make_clip_fixture.py) on tricky strings, with the vocab shipped in the package."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from contrastive.data import clip_bpe, tokenizer as tokenizer_lib

FIXTURE = json.loads((Path(__file__).with_name("fixtures") / "clip_tokens.json").read_text())


@pytest.fixture(scope="module")
def tokenizers():
    lengths = {case["context_length"] for case in FIXTURE["cases"]}
    return {n: clip_bpe.ClipTokenizer(max_len=n) for n in lengths}


@pytest.mark.parametrize("case", FIXTURE["cases"],
                         ids=lambda c: f"{c['context_length']}:{c['text'][:20]!r}")
def test_ids_equal_open_clip(tokenizers, case):
    ids = tokenizers[case["context_length"]].encode(case["text"])
    np.testing.assert_array_equal(ids, case["ids"])


def test_layout_decode_and_pickling(tokenizers):
    tokenizer = tokenizer_lib.from_setting("clip", 77)
    assert (tokenizer.sot_id, tokenizer.eot_id, tokenizer.pad_id) == (49406, 49407, 0)
    assert tokenizer.vocab_size == 49408
    assert tokenizer.decode(tokenizer.encode("A photo of a CAT.")) == "a photo of a cat ."
    clone = pickle.loads(pickle.dumps(tokenizer))
    np.testing.assert_array_equal(clone.encode("dog"), tokenizer.encode("dog"))
