"""Writes fixtures/clip_tokens.json: OpenCLIP's own token ids for tricky strings.

Made with the real `open_clip.tokenize` (its cleaning, regex, BPE, truncation and torch output
tensor), in a venv with torch and open_clip_torch (torch 2.14, open_clip_torch 3.3.0):
  /tmp/torchvenv/bin/python tests/data/make_clip_fixture.py
(An earlier version ran open_clip's tokenizer module under a NumPy stand-in for torch; the ids
it wrote were identical to the real ones.)
"""
import json
from pathlib import Path

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


def main():
    import open_clip
    import torch

    out = {"open_clip_version": open_clip.__version__, "torch_version": torch.__version__,
           "cases": []}
    for length in CONTEXT_LENGTHS:
        ids = open_clip.tokenize(TEXTS, context_length=length).numpy()
        out["cases"] += [{"text": t, "context_length": length, "ids": row.tolist()}
                         for t, row in zip(TEXTS, ids)]
    path = Path(__file__).with_name("fixtures") / "clip_tokens.json"
    path.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {len(out['cases'])} cases to {path}")


if __name__ == "__main__":
    main()
