"""Tokenizers: text -> int32 ids of a fixed length.

Every tokenizer exposes `pad_id` (what the text tower treats as padding) and `vocab_size`.
The word tokenizer and models trained here with `train_sentencepiece` use 0 = padding,
1 = unknown, 2 = end of text (always present, CLIP-style: the encoder may pool at it), real
tokens from 3 on. A SentencePiece model trained elsewhere keeps its own ids, looked up from the
model: its pad id (or one extra id past its vocabulary if it has none) and its end id (none:
no end token). Texts longer than max_len are truncated and keep the end token.

- WordTokenizer: lower-cased words and punctuation over a fixed vocabulary; for the digits
  default, whose captions come from a few templates.
- SentencePieceTokenizer (the `sentencepiece` package, Google's): for real text. Its model is
  trained locally from text with `train_sentencepiece` (nothing is downloaded), or loaded from
  a `.model` file trained elsewhere with the same special ids.
"""
import io
import re
from collections.abc import Iterable, Sequence

import numpy as np

PAD_ID, UNK_ID, EOS_ID = 0, 1, 2
_SPECIAL_TOKENS = ("<pad>", "<unk>", "</s>")
_WORD_PATTERN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def _fixed_length(ids: Sequence[int], max_len: int, eos_id: int | None = EOS_ID,
                  pad_id: int = PAD_ID) -> np.ndarray:
    """ids truncated to max_len - 1, then the end token (if any), then padding: int32
    [max_len]."""
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 (a token and the end token), got {max_len}")
    kept = list(ids[: max_len - 1]) + [eos_id] if eos_id is not None else list(ids[:max_len])
    out = np.full((max_len,), pad_id, np.int32)
    out[: len(kept)] = kept
    return out


def _stack(max_len: int, rows: list[np.ndarray]) -> np.ndarray:
    return np.stack(rows) if rows else np.zeros((0, max_len), np.int32)


def _content_ids(ids: Iterable[int], eos_id: int | None = EOS_ID,
                 pad_id: int = PAD_ID) -> list[int]:
    """The token ids before the end token, without padding."""
    content = []
    for token in np.asarray(ids).tolist():
        if token == eos_id:
            break
        if token != pad_id:
            content.append(token)
    return content


class WordTokenizer:
    """Whitespace/punctuation word tokenizer over a fixed vocabulary."""

    pad_id = PAD_ID

    def __init__(self, vocabulary: Sequence[str], max_len: int):
        words = [w for w in vocabulary if w not in _SPECIAL_TOKENS]
        self.vocabulary = tuple(_SPECIAL_TOKENS) + tuple(dict.fromkeys(words))
        self._ids = {word: i for i, word in enumerate(self.vocabulary)}
        self.max_len = max_len

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORD_PATTERN.findall(text.lower())

    @classmethod
    def from_texts(cls, texts: Iterable[str], max_len: int) -> "WordTokenizer":
        """Vocabulary = every word in texts, sorted, so it is independent of their order."""
        words = sorted({word for text in texts for word in cls.split(text)})
        return cls(words, max_len)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> np.ndarray:
        """int32 [max_len]."""
        return _fixed_length([self._ids.get(w, UNK_ID) for w in self.split(text)], self.max_len)

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """int32 [len(texts), max_len]."""
        return _stack(self.max_len, [self.encode(text) for text in texts])

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.vocabulary[i] for i in _content_ids(ids))


def train_sentencepiece(
    texts: Iterable[str], vocab_size: int, model_type: str = "unigram"
) -> bytes:
    """Trains a SentencePiece model on texts (locally) and returns its serialized proto."""
    import sentencepiece as spm  # pylint: disable=import-outside-toplevel

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        eos_id=EOS_ID,
        bos_id=-1,
        normalization_rule_name="nmt_nfkc_cf",  # NFKC + lower case, as CLIP's BPE does.
        hard_vocab_limit=False,  # Small corpora may not support the full vocab_size.
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


class SentencePieceTokenizer:
    """SentencePiece (unigram or BPE), whatever its special ids (looked up in the model)."""

    def __init__(self, model_proto: bytes, max_len: int):
        self.model_proto = model_proto
        self.max_len = max_len
        self._processor = self._load(model_proto)
        pieces = self._processor.get_piece_size()
        pad, eos = self._processor.pad_id(), self._processor.eos_id()
        # No pad piece: pad with one id past the vocabulary (an embedding row never trained).
        self.pad_id = pad if pad >= 0 else pieces
        self.eos_id = eos if eos >= 0 else None
        self._vocab_size = pieces + (pad < 0)

    @staticmethod
    def _load(model_proto: bytes):
        import sentencepiece as spm  # pylint: disable=import-outside-toplevel

        return spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def from_file(cls, path: str, max_len: int) -> "SentencePieceTokenizer":
        with open(path, "rb") as f:
            return cls(f.read(), max_len)

    def save(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.model_proto)

    # The C++ processor does not pickle; worker processes rebuild it from the proto.
    def __getstate__(self):
        return {"model_proto": self.model_proto, "max_len": self.max_len}

    def __setstate__(self, state):
        self.__init__(state["model_proto"], state["max_len"])

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def _fixed(self, ids) -> np.ndarray:
        return _fixed_length(ids, self.max_len, self.eos_id, self.pad_id)

    def encode(self, text: str) -> np.ndarray:
        """int32 [max_len]."""
        return self._fixed(self._processor.encode(text, out_type=int))

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """int32 [len(texts), max_len]."""
        ids = self._processor.encode(list(texts), out_type=int) if texts else []
        return _stack(self.max_len, [self._fixed(x) for x in ids])

    def decode(self, ids: Iterable[int]) -> str:
        return self._processor.decode(_content_ids(ids, self.eos_id, self.pad_id))


def from_setting(setting: str, max_len: int):
    """config.data.tokenizer -> tokenizer: "clip" (CLIP's BPE, the shipped vocab), a CLIP BPE
    vocab ".txt.gz", a SentencePiece ".model" or a Hugging Face `tokenizers` ".json" file
    ("digits" is built by contrastive.data.digits)."""
    import os  # pylint: disable=import-outside-toplevel

    from contrastive.data import clip_bpe  # pylint: disable=import-outside-toplevel

    if setting == "clip":
        return clip_bpe.ClipTokenizer(clip_bpe.DEFAULT_VOCAB, max_len)
    path = os.path.expanduser(setting)
    if not os.path.isfile(path):
        raise ValueError(f"tokenizer file not found: {path} (data.tokenizer is 'digits', "
                         "'clip', a CLIP .txt.gz vocab, a SentencePiece .model or a Hugging "
                         "Face tokenizer .json)")
    if path.endswith(".txt.gz"):
        return clip_bpe.ClipTokenizer(path, max_len)
    if path.endswith(".json"):
        from contrastive.data import hf_tokenizer  # pylint: disable=import-outside-toplevel

        return hf_tokenizer.HuggingFaceTokenizer.from_file(path, max_len)
    return SentencePieceTokenizer.from_file(path, max_len)
