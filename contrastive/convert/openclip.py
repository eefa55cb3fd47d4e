"""OpenCLIP ViT CLIP models (Cherti et al. 2023; OpenAI's CLIP, Radford et al. 2021) <-> our
`DualEncoder`, from the state dicts OpenCLIP writes (`open_clip_pytorch_model.bin` /
`.safetensors` on the Hugging Face hub, or `model.state_dict()`).

OpenCLIP's ViT: conv1 (no bias) -> [class token; patches] + positions -> ln_pre -> pre-LN blocks
-> ln_post -> class token -> @ proj. Its text tower: token + position embeddings -> causal
pre-LN blocks (no padding mask) -> ln_final -> features at the end-of-text token (argmax of the
ids: it is the largest) -> @ text_projection. LayerNorm eps 1e-5, exact GELU, or QuickGELU for
OpenAI's weights (`-quickgelu` model names). logit_scale is log(1/T), as our log_scale.
"""
import numpy as np

from contrastive import models
from contrastive.convert import blocks as B

# OpenAI's CLIP pixel statistics, which OpenCLIP's ViT checkpoints are trained with.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_SKIPPED = ("attn_mask",)  # a buffer some versions save: the causal mask, rebuilt by our tower


def openclip_model(state_dict: dict, *, quick_gelu: bool, vision_heads: int | None = None,
                   text_heads: int | None = None, pixel_mean=OPENAI_MEAN, pixel_std=OPENAI_STD,
                   **overrides) -> models.DualEncoder:
    """Our DualEncoder shaped like the OpenCLIP state dict. Heads cannot be read from weights:
    by default width / 64 (OpenCLIP's head_width, true of every published ViT model).
    quick_gelu: True for OpenAI's weights and `*-quickgelu` models. `overrides` set tower
    fields both towers share (dtype, remat, scan, head_chunks)."""
    sd = state_dict
    if "visual.conv1.weight" not in sd or "token_embedding.weight" not in sd:
        raise ValueError("not an OpenCLIP ViT CLIP state dict (no visual.conv1.weight / "
                         "token_embedding.weight; CustomTextCLIP, timm- or HF-tower models are "
                         "not supported)")
    if any(".ls_1." in k for k in sd) or "visual.attn_pool.query" in sd:
        raise ValueError("layer scale / attentional pooling OpenCLIP models are not supported")
    width, _, patch, _ = sd["visual.conv1.weight"].shape
    text_width = sd["token_embedding.weight"].shape[1]
    act = "quick_gelu" if quick_gelu else "gelu"
    vision_heads, text_heads = vision_heads or width // 64, text_heads or text_width // 64
    if not (vision_heads and text_heads):
        raise ValueError(f"widths {width} / {text_width} are below OpenCLIP's head width 64: "
                         "pass vision_heads and text_heads")
    image = models.ViT(
        width=width, depth=B.depth(sd, "visual.transformer.resblocks."),
        mlp_dim=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_heads=vision_heads, patch_size=patch, pool="cls", posemb="learn",
        act=act, norm_eps=1e-5, pre_norm=True, patch_bias=False, **overrides)
    text = models.TextTransformer(
        width=text_width, depth=B.depth(sd, "transformer.resblocks."),
        mlp_dim=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_heads=text_heads, vocab_size=sd["token_embedding.weight"].shape[0],
        max_len=sd["positional_embedding"].shape[0], causal=True, pool="eos", pad_id=0,
        mask_padding=False, act=act, norm_eps=1e-5, **overrides)
    return models.DualEncoder(image, text, embed_dim=sd["visual.proj"].shape[1],
                              pixel_mean=tuple(pixel_mean), pixel_std=tuple(pixel_std))


def from_openclip(state_dict: dict, model: models.DualEncoder) -> dict:
    """OpenCLIP state dict -> our params for `model` (from `openclip_model`). A missing
    logit_bias leaves our SigLIP bias at its init (CLIP's loss ignores it)."""
    sd = {k: np.asarray(v) for k, v in state_dict.items() if k not in _SKIPPED}
    heads_v, heads_t = model.image_tower.num_heads, model.text_tower.num_heads
    v = "visual."
    image = {
        "patch_embed": {"kernel": B.conv(sd[v + "conv1.weight"])},
        "cls": sd[v + "class_embedding"].reshape(1, 1, -1),
        "posemb": sd[v + "positional_embedding"][None],
        "pre_norm": B.norm(sd[v + "ln_pre.weight"], sd[v + "ln_pre.bias"]),
        "encoder": B.encoder(
            [B.block(sd, f"{v}transformer.resblocks.{i}.", B.OPENCLIP_BLOCK, heads_v)
             for i in range(B.depth(sd, v + "transformer.resblocks."))],
            B.norm(sd[v + "ln_post.weight"], sd[v + "ln_post.bias"])),
    }
    text = {
        "token_embed": {"embedding": sd["token_embedding.weight"]},
        "posemb": sd["positional_embedding"],
        "encoder": B.encoder(
            [B.block(sd, f"transformer.resblocks.{i}.", B.OPENCLIP_BLOCK, heads_t)
             for i in range(B.depth(sd, "transformer.resblocks."))],
            B.norm(sd["ln_final.weight"], sd["ln_final.bias"])),
    }
    if model.image_tower.scan:
        image["encoder"] = B.stack_blocks(image["encoder"])
    if model.text_tower.scan:
        text["encoder"] = B.stack_blocks(text["encoder"])
    bias = sd.get("logit_bias", np.asarray(model.bias_init, np.float32))
    return {"image_tower": image, "text_tower": text,
            "image_head": {"proj": {"kernel": sd[v + "proj"]}},
            "text_head": {"proj": {"kernel": sd["text_projection"]}},
            "log_scale": sd["logit_scale"].reshape(()), "bias": np.asarray(bias).reshape(())}


def to_openclip(params: dict, logit_bias: bool = False) -> dict:
    """Our DualEncoder params (from an `openclip_model`-shaped model) -> an OpenCLIP state dict
    that `open_clip.model.CLIP.load_state_dict` accepts (with `init_logit_bias` if logit_bias)."""
    image, text = params["image_tower"], params["text_tower"]
    v = "visual."
    sd = {
        v + "conv1.weight": B.conv_back(image["patch_embed"]["kernel"]),
        v + "class_embedding": np.asarray(image["cls"]).reshape(-1),
        v + "positional_embedding": np.asarray(image["posemb"])[0],
        **B.norm_back(image["pre_norm"], v + "ln_pre"),
        **B.norm_back(image["encoder"]["final_norm"], v + "ln_post"),
        v + "proj": np.asarray(params["image_head"]["proj"]["kernel"]),
        "token_embedding.weight": np.asarray(text["token_embed"]["embedding"]),
        "positional_embedding": np.asarray(text["posemb"]),
        **B.norm_back(text["encoder"]["final_norm"], "ln_final"),
        "text_projection": np.asarray(params["text_head"]["proj"]["kernel"]),
        "logit_scale": np.asarray(params["log_scale"]),
    }
    for i, p in enumerate(B.encoder_blocks(image["encoder"])):
        sd.update(B.block_back(p, f"{v}transformer.resblocks.{i}.", B.OPENCLIP_BLOCK))
    for i, p in enumerate(B.encoder_blocks(text["encoder"])):
        sd.update(B.block_back(p, f"transformer.resblocks.{i}.", B.OPENCLIP_BLOCK))
    if logit_bias:
        sd["logit_bias"] = np.asarray(params["bias"])
    return sd
