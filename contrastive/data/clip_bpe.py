"""CLIP's byte-level BPE (Radford et al. 2021), with the ids OpenCLIP's `tokenize` gives.

Vocabulary: the 256 byte symbols, the same with "</w>" (end of word), one symbol per merge of
the vocab file (its first 48,894 merges), then <start_of_text> and <end_of_text> (49406 and
49407 with the standard file). Text is cleaned as OpenCLIP does (ftfy, HTML unescape twice,
whitespace collapsed, lower case); each encoding is [sot] + tokens + [eot], truncated to
max_len with eot kept last, padded with 0. The standard vocab ships in assets/ (MIT licence,
OpenAI CLIP), so data.tokenizer="clip" needs no download.
"""
import functools
import gzip
import html
import os
from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_VOCAB = os.path.join(os.path.dirname(__file__), "assets", "bpe_simple_vocab_16e6.txt.gz")
_MAX_MERGES = 49152 - 256 - 2
_SPECIAL = ("<start_of_text>", "<end_of_text>")
_CACHE_ENTRIES = 1 << 18  # web corpora have more distinct words than memory wants


@functools.lru_cache(None)
def byte_symbols() -> dict[int, str]:
    """Each byte -> a printable unicode character (GPT-2's reversible table), in vocabulary
    order: the printable bytes as themselves first, then the others as chr(256 + k)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable},
            **{b: chr(256 + k) for k, b in enumerate(others)}}


def clean(text: str) -> str:
    import ftfy  # pylint: disable=import-outside-toplevel

    # Printable ASCII without "&" is a fixed point of ftfy and of html.unescape (ftfy repairs
    # mojibake, which needs non-ASCII, entities and control characters): skip their cost.
    if not (text.isascii() and text.isprintable() and "&" not in text):
        text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """text -> int32 [max_len]; `pad_id` 0, `sot_id`, `eot_id` as in OpenCLIP."""

    pad_id = 0

    def __init__(self, vocab_path: str = DEFAULT_VOCAB, max_len: int = 77):
        import regex  # pylint: disable=import-outside-toplevel

        if max_len < 2:
            raise ValueError(f"max_len must be at least 2, got {max_len}")
        self.vocab_path, self.max_len = vocab_path, max_len
        with gzip.open(vocab_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1:_MAX_MERGES + 1]  # line 0 is a version header
        merges = [tuple(line.split()) for line in lines]
        byte_tokens = list(byte_symbols().values())
        vocab = byte_tokens + [b + "</w>" for b in byte_tokens] + ["".join(m) for m in merges]
        vocab += list(_SPECIAL)
        self._ids = {token: i for i, token in enumerate(vocab)}
        self._tokens = vocab
        self._ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.sot_id, self.eot_id = self._ids[_SPECIAL[0]], self._ids[_SPECIAL[1]]
        self._pattern = regex.compile(
            "|".join(_SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE)
        self._piece_ids = {}  # pre-token -> its ids (most words of a corpus repeat)

    def __getstate__(self):
        return {"vocab_path": self.vocab_path, "max_len": self.max_len}

    def __setstate__(self, state):
        self.__init__(state["vocab_path"], state["max_len"])

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def _bpe(self, word: str) -> list[str]:
        """Greedy lowest-rank merging of one pre-token's symbols."""
        if word in _SPECIAL:
            return [word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            ranked = [(self._ranks.get(pair, np.inf), i)
                      for i, pair in enumerate(zip(parts, parts[1:]))]
            best_rank, where = min(ranked)
            if best_rank == np.inf:
                break
            first, second = parts[where], parts[where + 1]
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence, left to right
                if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def content_ids(self, text: str) -> list[int]:
        """BPE ids of the cleaned text, without sot/eot."""
        ids = []
        for piece in self._pattern.findall(clean(text)):
            known = self._piece_ids.get(piece)
            if known is None:
                word = "".join(byte_symbols()[b] for b in piece.encode("utf-8"))
                known = [self._ids[token] for token in self._bpe(word)]
                if len(self._piece_ids) < _CACHE_ENTRIES:
                    self._piece_ids[piece] = known
            ids += known
        return ids

    def encode(self, text: str) -> np.ndarray:
        """int32 [max_len]: sot, tokens, eot (kept when truncating), zeros."""
        ids = [self.sot_id] + self.content_ids(text) + [self.eot_id]
        if len(ids) > self.max_len:
            ids = ids[: self.max_len - 1] + [self.eot_id]
        out = np.zeros((self.max_len,), np.int32)
        out[: len(ids)] = ids
        return out

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        rows = [self.encode(t) for t in texts]
        return np.stack(rows) if rows else np.zeros((0, self.max_len), np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        tokens = [self._tokens[i] for i in np.asarray(ids).tolist()
                  if i not in (self.pad_id, self.sot_id, self.eot_id)]
        inverse = {c: b for b, c in byte_symbols().items()}
        data = bytearray(inverse[c] for c in "".join(tokens))
        return data.decode("utf-8", errors="replace").replace("</w>", " ").strip()
