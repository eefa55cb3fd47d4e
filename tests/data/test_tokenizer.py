"""Tokenizers: round trip, padding, truncation and the shared special ids."""
import pickle

import numpy as np
import pytest

from contrastive.data import tokenizer as tokenizer_lib
from contrastive.data.tokenizer import EOS_ID, PAD_ID, UNK_ID

CORPUS = [
    f"a photo of a {size} {colour} {thing} on the {place}"
    for size in ("small", "large")
    for colour in ("red", "green", "blue", "white")
    for thing in ("cat", "dog", "car", "bird", "house")
    for place in ("grass", "table", "street", "beach")
]


def test_word_round_trip_and_padding():
    tokenizer = tokenizer_lib.WordTokenizer.from_texts(["a photo of the digit three"], max_len=10)
    ids = tokenizer.encode("A photo of the digit THREE")
    assert ids.dtype == np.int32 and ids.shape == (10,)
    assert tokenizer.decode(ids) == "a photo of the digit three"
    np.testing.assert_array_equal(ids[6:], [EOS_ID, PAD_ID, PAD_ID, PAD_ID])
    assert np.all(ids[:6] > EOS_ID)


def test_word_truncation_keeps_the_end_token():
    tokenizer = tokenizer_lib.WordTokenizer.from_texts(["one two three four five"], max_len=4)
    ids = tokenizer.encode("one two three four five")
    assert ids[-1] == EOS_ID
    assert tokenizer.decode(ids) == "one two three"


def test_word_unknowns_and_punctuation():
    tokenizer = tokenizer_lib.WordTokenizer.from_texts(["handwritten 3", "a, b."], max_len=8)
    ids = tokenizer.encode("handwritten 7!")
    assert ids[1] == UNK_ID and ids[2] == UNK_ID  # "7" and "!" are not in the vocabulary.
    assert tokenizer.decode(tokenizer.encode("a, b.")) == "a , b ."


def test_word_vocabulary_is_independent_of_text_order():
    texts = ["handwritten 3", "a photo of the digit three"]
    forward = tokenizer_lib.WordTokenizer.from_texts(texts, max_len=8)
    backward = tokenizer_lib.WordTokenizer.from_texts(texts[::-1], max_len=8)
    assert forward.vocabulary == backward.vocabulary
    assert forward.vocab_size == len(forward.vocabulary) == 3 + 8


def test_batch_encoding_matches_single():
    tokenizer = tokenizer_lib.WordTokenizer.from_texts(CORPUS, max_len=8)
    batch = tokenizer.encode_batch(CORPUS[:3])
    assert batch.shape == (3, 8)
    for row, text in zip(batch, CORPUS[:3]):
        np.testing.assert_array_equal(row, tokenizer.encode(text))
    assert tokenizer.encode_batch([]).shape == (0, 8)


@pytest.fixture(scope="module")
def sentencepiece_model():
    return tokenizer_lib.train_sentencepiece(CORPUS, vocab_size=48)


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_round_trip(model_type):
    tokenizer = tokenizer_lib.SentencePieceTokenizer(
        tokenizer_lib.train_sentencepiece(CORPUS, vocab_size=48, model_type=model_type), 40
    )
    for text in CORPUS[::17]:
        ids = tokenizer.encode(text)
        assert ids.dtype == np.int32 and ids.shape == (40,)
        assert tokenizer.decode(ids) == text
        end = int(np.argmax(ids == EOS_ID))
        assert ids[end] == EOS_ID and np.all(ids[end + 1 :] == PAD_ID) and np.all(ids[:end] > EOS_ID)


def test_sentencepiece_lower_cases_and_truncates(sentencepiece_model):
    tokenizer = tokenizer_lib.SentencePieceTokenizer(sentencepiece_model, max_len=6)
    ids = tokenizer.encode("A PHOTO of a small red cat on the grass")
    assert ids.shape == (6,) and ids[-1] == EOS_ID and PAD_ID not in ids
    full = tokenizer_lib.SentencePieceTokenizer(sentencepiece_model, max_len=64)
    assert full.decode(full.encode("A PHOTO of a small red cat")) == "a photo of a small red cat"
    np.testing.assert_array_equal(ids[:5], full.encode("a photo of a small red cat")[:5])


def test_sentencepiece_save_load_and_pickle(sentencepiece_model, tmp_path):
    tokenizer = tokenizer_lib.SentencePieceTokenizer(sentencepiece_model, max_len=32)
    path = str(tmp_path / "captions.model")
    tokenizer.save(path)
    loaded = tokenizer_lib.SentencePieceTokenizer.from_file(path, max_len=32)
    unpickled = pickle.loads(pickle.dumps(tokenizer))
    text = "a large white dog on the street"
    for other in (loaded, unpickled):
        np.testing.assert_array_equal(other.encode(text), tokenizer.encode(text))
    np.testing.assert_array_equal(
        tokenizer.encode_batch([text, CORPUS[0]]),
        np.stack([tokenizer.encode(text), tokenizer.encode(CORPUS[0])]),
    )


def _sentencepiece(**ids) -> bytes:
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=model,
                                   vocab_size=30, minloglevel=2, **ids)
    return model.getvalue()


@pytest.mark.parametrize("ids, pad, eos", [
    ({}, None, 2),  # sentencepiece's defaults: unk=0, bos=1, eos=2, no pad
    ({"pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1}, 0, 1),  # T5's layout
    ({"eos_id": -1}, None, None),  # no end token at all
])
def test_sentencepiece_model_with_any_special_ids(ids, pad, eos):
    import sentencepiece as spm

    proto = _sentencepiece(**ids)
    processor = spm.SentencePieceProcessor(model_proto=proto)
    tokenizer = tokenizer_lib.SentencePieceTokenizer(proto, max_len=64)
    pieces = processor.get_piece_size()
    pad = pieces if pad is None else pad  # no pad piece: one id past the vocabulary
    assert tokenizer.pad_id == pad and tokenizer.vocab_size == pieces + (pad == pieces)
    text = CORPUS[5]
    content = processor.encode(text)  # the library's own ids are the oracle
    assert len(content) < 60
    expected = content + ([eos] if eos is not None else []) + [pad] * 64
    expected = expected[:64]
    np.testing.assert_array_equal(tokenizer.encode(text), expected)
    assert tokenizer.decode(tokenizer.encode(text)) == processor.decode(content)
    short = tokenizer_lib.SentencePieceTokenizer(proto, max_len=12).encode(text)
    assert len(content) > 12
    np.testing.assert_array_equal(short, content[:11] + [eos] if eos is not None else content[:12])


def test_max_len_below_two_is_rejected():
    tokenizer = tokenizer_lib.WordTokenizer.from_texts(["a"], max_len=1)
    with pytest.raises(ValueError, match="max_len must be at least 2"):
        tokenizer.encode("a")
