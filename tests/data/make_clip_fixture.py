"""Writes fixtures/clip_tokens.json: OpenCLIP's own token ids for tricky strings.

Run once, in a venv with `pip install --no-deps open-clip-torch` plus ftfy and regex:
  python tests/data/make_clip_fixture.py
open_clip's tokenizer module imports torch only to build its output tensor; where torch is not
installed (no CPU-only torch on the package index here) a NumPy stand-in for torch.zeros /
torch.tensor / torch.long is put in sys.modules before the module loads. The ids come from
open_clip's SimpleTokenizer.__call__ (its cleaning, regex, BPE and truncation), unchanged.
"""
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np

TEXTS = [
    "a photo of a cat",
    "A PHOTO OF A DOG!!!",
    "  multiple   spaces\tand\nnewlines  ",
    "it's a dog's life, isn't it? they'll've",
    "numbers 12345 and 3.14159 and 1,000,000",
    "café naïve résumé Zoë façade",
    "emoji 🐈‍⬛ 😀👍🏽 and symbols © ® ™ ∑",
    "中文字符 日本語のテキスト 한국어",
    "mojibake: cafÃ© and â€œquotesâ€\x9d",
    "html &amp;amp; &lt;b&gt;bold&lt;/b&gt; &quot;q&quot;",
    "<start_of_text> special <end_of_text> tokens inside",
    "hyphen-ated words—and dashes – and ellipses…",
    "x" * 300,
    " ".join(["long caption"] * 60),
    "",
]
CONTEXT_LENGTHS = (77, 16)


def _torch_stand_in() -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.long = np.int64
    torch.LongTensor = torch.Tensor = np.ndarray
    torch.zeros = lambda *shape, dtype=None: np.zeros(shape, dtype)
    torch.tensor = np.asarray
    return torch


def load_open_clip_tokenizer():
    import importlib.metadata

    files = importlib.metadata.files("open_clip_torch")
    path = next(f.locate() for f in files if str(f).endswith("open_clip/tokenizer.py"))
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.modules["torch"] = _torch_stand_in()
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    module = load_open_clip_tokenizer()
    import importlib.metadata
    out = {"open_clip_version": importlib.metadata.version("open_clip_torch"), "cases": []}
    for length in CONTEXT_LENGTHS:
        ids = np.asarray(module.tokenize(TEXTS, context_length=length))
        out["cases"] += [{"text": t, "context_length": length, "ids": row.tolist()}
                         for t, row in zip(TEXTS, ids)]
    path = Path(__file__).with_name("fixtures") / "clip_tokens.json"
    path.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {len(out['cases'])} cases to {path}")


if __name__ == "__main__":
    main()
