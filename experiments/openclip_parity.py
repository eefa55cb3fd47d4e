"""Full-size parity: OpenCLIP's ViT-B-32 (random init, real BPE tokens) against our converted
DualEncoder, plus the export round trip. Two steps, two Pythons (torch only for the first):

  /tmp/torchvenv/bin/python experiments/openclip_parity.py make /tmp/b32   # open_clip writes
  python experiments/openclip_parity.py check /tmp/b32                     # ours reads, no torch

Writes experiments/results/openclip_parity.json (max |difference| of the projected features).
"""
import json
import sys
from pathlib import Path

import numpy as np

TEXTS = ["a photo of a cat", "a diagram!", "two dogs playing in the snow"]


def make(out: Path, name: str = "ViT-B-32"):
    import open_clip
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / "model.safetensors"))
    images = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    tokens = open_clip.get_tokenizer(name)(TEXTS).numpy()
    with torch.no_grad():
        x = model.encode_image(torch.from_numpy(images)).numpy()
        y = model.encode_text(torch.from_numpy(tokens)).numpy()
    np.savez(out / "io.npz", images=images, tokens=tokens, x=x, y=y)
    (out / "meta.json").write_text(json.dumps(dict(model=name, open_clip=open_clip.__version__,
                                                   torch=torch.__version__)))


def check(out: Path):
    import jax
    import jax.numpy as jnp

    from contrastive import convert
    from contrastive.data import clip_bpe

    sd = convert.load_state_dict(out / "model.safetensors")
    data = np.load(out / "io.npz")
    model = convert.openclip_model(sd, quick_gelu=False)
    params = convert.from_openclip(sd, model)
    ours = clip_bpe.ClipTokenizer(max_len=77).encode_batch(TEXTS)

    def run(m, images, tokens):
        return m.image_head(m.image_tower(images)), m.text_head(m.text_tower(tokens))

    x, y = jax.jit(lambda p, i, t: model.apply({"params": p}, i, t, method=run))(
        params, jnp.asarray(data["images"].transpose(0, 2, 3, 1)), jnp.asarray(ours, jnp.int32))
    back = convert.to_openclip(params)
    result = dict(
        **json.loads((out / "meta.json").read_text()),
        tokens_equal=bool(np.array_equal(ours, data["tokens"])),
        image_max_abs_diff=float(np.abs(np.asarray(x) - data["x"]).max()),
        text_max_abs_diff=float(np.abs(np.asarray(y) - data["y"]).max()),
        feature_max_abs=float(max(np.abs(data["x"]).max(), np.abs(data["y"]).max())),
        export_bit_exact=all(np.array_equal(back[k], v) for k, v in sd.items()
                             if k != "attn_mask"),
        heads=(model.image_tower.num_heads, model.text_tower.num_heads))
    path = Path(__file__).parent / "results" / "openclip_parity.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](Path(sys.argv[2]))
