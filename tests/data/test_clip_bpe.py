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


def test_cleaning_skips_ftfy_only_where_ftfy_changes_nothing():
    # Oracle: ftfy and html.unescape themselves, on random printable ASCII (the fast path's
    # domain) and on strings just outside it (entities, control characters, non-ASCII).
    import html
    import string

    import ftfy

    def full_clean(text):
        text = html.unescape(html.unescape(ftfy.fix_text(text)))
        return " ".join(text.split()).lower()

    rng = np.random.default_rng(0)
    alphabet = np.array(list(string.printable[:95]))  # printable ASCII, space included
    texts = ["".join(rng.choice(alphabet, rng.integers(1, 40))) for _ in range(3000)]
    texts += ["x &amp;amp; y", "tab\there", "crlf\r\nline", "caf\u00c3\u00a9", "\x1b[31mred",
              "fullwidth \uff21", "\ufb01ne ligature", "a &lt;b&gt;"]
    for text in texts:
        assert clip_bpe.clean(text) == full_clean(text), repr(text)


def test_repeated_words_give_the_ids_of_a_fresh_tokenizer():
    # The per-word id cache: encoding after a warm-up equals encoding cold.
    warm, cold = clip_bpe.ClipTokenizer(max_len=24), clip_bpe.ClipTokenizer(max_len=24)
    text = "The cat, the cat; THE CAT's 12 cats!"
    warm.encode("the cat sat on the cat mat")
    np.testing.assert_array_equal(warm.encode(text), cold.encode(text))
