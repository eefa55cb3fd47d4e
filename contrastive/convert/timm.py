"""A timm VisionTransformer (`vit_*` models, Wightman's pytorch-image-models) <-> our `ViT`
image tower, from its state dict. timm's ViT: patch_embed.proj (conv, bias) -> [cls_token;
patches] + pos_embed -> pre-LN blocks (fused qkv) -> norm -> class token; LayerNorm eps 1e-6,
exact GELU. The classifier `head` (if any) is not part of the tower and is left out."""
import numpy as np

from contrastive import models
from contrastive.convert import blocks as B


def timm_vit(state_dict: dict, *, num_heads: int, **overrides) -> models.ViT:
    """Our ViT shaped like the timm state dict (heads cannot be read from the weights: the
    timm model's num_heads, e.g. 3 for vit_tiny, 12 for vit_base)."""
    sd = state_dict
    unsupported = [k for k in sd if k.startswith(("reg_token", "fc_norm.", "attn_pool."))
                   or ".ls1." in k or ".q_norm." in k]
    if unsupported or "cls_token" not in sd or not _pos_embed_has_class(sd):
        raise ValueError("timm ViT without a class token, or with registers, fc_norm, layer "
                         f"scale or qk-norm, is not supported (e.g. {unsupported[:2]})")
    width, _, patch, _ = sd["patch_embed.proj.weight"].shape
    fields = dict(width=width, depth=B.depth(sd, "blocks."),
                  mlp_dim=sd["blocks.0.mlp.fc1.weight"].shape[0], num_heads=num_heads,
                  patch_size=patch, pool="cls", posemb="learn", act="gelu", norm_eps=1e-6,
                  pre_norm="norm_pre.weight" in sd, patch_bias=True)
    return models.ViT(**{**fields, **overrides})


def _pos_embed_has_class(sd) -> bool:
    grid = sd["pos_embed"].shape[1] - 1
    return int(round(grid**0.5)) ** 2 == grid


def from_timm(state_dict: dict, model: models.ViT) -> dict:
    """timm ViT state dict -> our ViT params for `model` (from `timm_vit`)."""
    sd = {k: np.asarray(v) for k, v in state_dict.items()}
    params = {
        "patch_embed": {"kernel": B.conv(sd["patch_embed.proj.weight"]),
                        "bias": sd["patch_embed.proj.bias"]},
        "cls": sd["cls_token"],
        "posemb": sd["pos_embed"],
        "encoder": B.encoder(
            [B.block(sd, f"blocks.{i}.", B.TIMM_BLOCK, model.num_heads)
             for i in range(B.depth(sd, "blocks."))],
            B.norm(sd["norm.weight"], sd["norm.bias"])),
    }
    if model.pre_norm:
        params["pre_norm"] = B.norm(sd["norm_pre.weight"], sd["norm_pre.bias"])
    if model.scan:
        params["encoder"] = B.stack_blocks(params["encoder"])
    return params


def to_timm(params: dict) -> dict:
    """Our ViT params -> a timm VisionTransformer state dict (num_classes=0: no head)."""
    sd = {
        "patch_embed.proj.weight": B.conv_back(params["patch_embed"]["kernel"]),
        "patch_embed.proj.bias": np.asarray(params["patch_embed"]["bias"]),
        "cls_token": np.asarray(params["cls"]),
        "pos_embed": np.asarray(params["posemb"]),
        **B.norm_back(params["encoder"]["final_norm"], "norm"),
    }
    if "pre_norm" in params:
        sd.update(B.norm_back(params["pre_norm"], "norm_pre"))
    for i, p in enumerate(B.encoder_blocks(params["encoder"])):
        sd.update(B.block_back(p, f"blocks.{i}.", B.TIMM_BLOCK))
    return sd
