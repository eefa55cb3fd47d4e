"""Hugging Face `tokenizers` JSON files (tokenizer.json of any model on the Hub, or one trained
with the `tokenizers` package) as a fixed-length tokenizer.

The file's own normaliser, pre-tokenizer and post-processor (e.g. BERT's [CLS] ... [SEP]) apply
unchanged. Truncation keeps a final special token (the end token the text tower may pool at);
padding uses the file's pad token ("<pad>", "[PAD]", "<|pad|>" or its padding setting), else
one id past the vocabulary.
"""
from collections.abc import Iterable, Sequence

import numpy as np

_PAD_TOKENS = ("<pad>", "[PAD]", "<|pad|>", "<|padding|>")


class HuggingFaceTokenizer:
    """text -> int32 [max_len] with a `tokenizers.Tokenizer`."""

    def __init__(self, json_text: str, max_len: int):
        import tokenizers  # pylint: disable=import-outside-toplevel

        if max_len < 2:
            raise ValueError(f"max_len must be at least 2, got {max_len}")
        self.json_text = json_text
        self.max_len = max_len
        self._tokenizer = tokenizers.Tokenizer.from_str(json_text)
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        padding = self._tokenizer.padding
        pad = padding["pad_id"] if padding else next(
            (self._tokenizer.token_to_id(t) for t in _PAD_TOKENS
             if self._tokenizer.token_to_id(t) is not None), None)
        self.pad_id = size if pad is None else int(pad)
        self._vocab_size = size + (pad is None)

    @classmethod
    def from_file(cls, path: str, max_len: int) -> "HuggingFaceTokenizer":
        with open(path, encoding="utf-8") as f:
            return cls(f.read(), max_len)

    def __getstate__(self):
        return {"json_text": self.json_text, "max_len": self.max_len}

    def __setstate__(self, state):
        self.__init__(state["json_text"], state["max_len"])

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def _fixed(self, encoding) -> np.ndarray:
        ids = list(encoding.ids)
        if len(ids) > self.max_len:
            ends_special = bool(encoding.special_tokens_mask[-1])
            ids = ids[: self.max_len - 1] + ids[-1:] if ends_special else ids[: self.max_len]
        out = np.full((self.max_len,), self.pad_id, np.int32)
        out[: len(ids)] = ids
        return out

    def encode(self, text: str) -> np.ndarray:
        """int32 [max_len]."""
        return self._fixed(self._tokenizer.encode(text))

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """int32 [len(texts), max_len]."""
        rows = [self._fixed(e) for e in self._tokenizer.encode_batch(list(texts))]
        return np.stack(rows) if rows else np.zeros((0, self.max_len), np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        return self._tokenizer.decode([i for i in np.asarray(ids).tolist() if i != self.pad_id])
