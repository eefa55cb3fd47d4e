"""Parity fixtures made by the peers' own code: tiny randomly initialised OpenCLIP and timm models.

Run with a Python that has torch, open_clip_torch and timm (not the project's venv; the tests
that read these files need no torch):

    /tmp/torchvenv/bin/python tools/make_pretrained_fixtures.py

Writes under tests/convert/fixtures/, for each model NAME:
  NAME.safetensors  the model's state_dict exactly as the library holds it
  NAME.npz          fixed inputs and the library's outputs for them (float32):
                    images (B, 3, H, W) NCHW, tokens (B, L) int (CLIP models), and
                    image_features / text_features (unnormalised, after the projection) or
                    features (timm: the pooled features of a num_classes=0 model)
  NAME.json         the constructor arguments and library versions
and openclip_vit_gelu.pt: that state dict as an OpenCLIP training checkpoint written by
torch.save ({"state_dict": {"module." + name: tensor}, "epoch": 3}).
Made with torch 2.14, open_clip_torch 3.3.0, timm 1.0.31.
"""
import json
from pathlib import Path

import numpy as np
import open_clip
import timm
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from safetensors.torch import load_file, save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "convert" / "fixtures"
BATCH = 4


def _tokens(vocab: int, context: int, rng: np.random.Generator) -> np.ndarray:
    """CLIP-style rows: start token (vocab - 2), words, end token (vocab - 1, the largest id,
    which OpenCLIP's argmax pooling finds), zero padding; lengths vary, one row is full."""
    rows = np.zeros((BATCH, context), np.int64)
    for i, n_words in enumerate([3, context - 2, 1, context // 2]):
        words = rng.integers(1, vocab - 2, n_words)
        rows[i, : n_words + 2] = [vocab - 2, *words, vocab - 1]
    return rows


def _save(name: str, model: torch.nn.Module, arrays: dict, meta: dict):
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(OUT / f"{name}.safetensors"))
    np.savez(OUT / f"{name}.npz", **arrays)
    meta["versions"] = dict(torch=torch.__version__, open_clip=open_clip.__version__,
                            timm=timm.__version__)
    (OUT / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")


def openclip_fixture(name: str, quick_gelu: bool, vision: dict, text: dict, embed_dim: int,
                     seed: int):
    torch.manual_seed(seed)
    model = CLIP(embed_dim, CLIPVisionCfg(**vision), CLIPTextCfg(**text), quick_gelu=quick_gelu)
    # Non-trivial LayerNorm gains/biases and logit scale (init leaves them at 1, 0, log 1/0.07).
    with torch.no_grad():
        for key, value in model.named_parameters():
            if value.ndim == 1 and ("ln" in key or "bias" in key):
                value.add_(0.1 * torch.randn_like(value))
        model.logit_scale.fill_(2.5)
    model.eval()
    rng = np.random.default_rng(seed)
    size = vision["image_size"]
    images = rng.standard_normal((BATCH, 3, size, size)).astype(np.float32)
    tokens = _tokens(text["vocab_size"], text["context_length"], rng)
    with torch.no_grad():
        image_features = model.encode_image(torch.from_numpy(images)).numpy()
        text_features = model.encode_text(torch.from_numpy(tokens)).numpy()
    _save(name, model, dict(images=images, tokens=tokens, image_features=image_features,
                            text_features=text_features),
          dict(library="open_clip", quick_gelu=quick_gelu, embed_dim=embed_dim, vision=vision,
               text=text, vision_heads=vision["width"] // vision["head_width"],
               text_heads=text["heads"]))


def timm_fixture(name: str, seed: int, **kwargs):
    torch.manual_seed(seed)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **kwargs)
    with torch.no_grad():
        for key, value in model.named_parameters():
            if value.ndim == 1:
                value.add_(0.1 * torch.randn_like(value))
            if key in ("cls_token", "pos_embed"):
                value.normal_(0, 0.5)  # timm initialises the class token at ~1e-6
    model.eval()
    rng = np.random.default_rng(seed)
    size = kwargs["img_size"]
    images = rng.standard_normal((BATCH, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        features = model(torch.from_numpy(images)).numpy()
    _save(name, model, dict(images=images, features=features),
          dict(library="timm", model="vit_tiny_patch16_224", kwargs=kwargs))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    # OpenAI's CLIP recipe (QuickGELU) and OpenCLIP's (exact GELU), shrunk: ViT with 8x8 patches
    # on 32x32 images, a 16-token causal text tower over a 256-word vocabulary.
    openclip_fixture(
        "openclip_vit_quickgelu", quick_gelu=True, embed_dim=48, seed=0,
        vision=dict(layers=2, width=64, head_width=32, patch_size=8, image_size=32),
        text=dict(context_length=16, vocab_size=256, width=32, heads=2, layers=2))
    openclip_fixture(
        "openclip_vit_gelu", quick_gelu=False, embed_dim=24, seed=1,
        vision=dict(layers=1, width=32, head_width=16, patch_size=16, image_size=32),
        text=dict(context_length=8, vocab_size=64, width=32, heads=4, layers=1))
    timm_fixture("timm_vit", seed=2, img_size=32, patch_size=8, embed_dim=32, depth=2,
                 num_heads=2)
    shapes_fixture("ViT-B-32")
    # The same small model as torch.save writes it (.bin on the hub): read without torch.
    sd = load_file(str(OUT / "openclip_vit_gelu.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},
               OUT / "openclip_vit_gelu.pt")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB, to {OUT}")


def shapes_fixture(name: str = "ViT-B-32"):
    """The parameter shapes of a full-size OpenCLIP model (no weights): configs/openclip.py
    must build exactly this model."""
    model = open_clip.create_model(name, pretrained=None)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    (OUT / f"openclip_{name}_shapes.json").write_text(json.dumps(shapes) + "\n")


if __name__ == "__main__":
    main()
