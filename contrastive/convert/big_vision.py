"""big_vision two-tower checkpoints (SigLIP, Zhai et al. 2023; LiT) <-> our `DualEncoder`.

big_vision's .npz checkpoints are flax params flattened with "/" ("params/img/Transformer/
encoderblock_0/MultiHeadDotProductAttention_0/query/kernel"), blocks unrolled
(encoderblock_N) or scanned (one "encoderblock" with a leading depth axis). Its layouts are
flax's, as ours: attention kernels (D, H, K) / (H, K, D), so only names change. SigLIP's
image tower: patch conv (bias) + learned posemb, no class token, pre-LN blocks, encoder_norm,
MAP pooling, a biased head; text: embeddings + posemb, bidirectional blocks with no padding
mask, encoder_norm, the last position, a biased head; t = log scale, b = bias. flax's tanh
GELU and LayerNorm eps 1e-6 throughout (our defaults).
"""
import numpy as np

from contrastive import models
from contrastive.convert.blocks import encoder_blocks, flatten, stack_blocks, unflatten

_BLOCK = {"LayerNorm_0": "ln1", "MultiHeadDotProductAttention_0": "attn", "LayerNorm_1": "ln2",
          "MlpBlock_0": "mlp"}
_MLP = {"Dense_0": "fc1", "Dense_1": "fc2"}
_ATTN = ("query", "key", "value", "out")


def _tree(state_dict: dict) -> dict:
    tree = unflatten({k.removeprefix("params/"): np.asarray(v) for k, v in state_dict.items()})
    if "img" not in tree or "txt" not in tree:
        raise ValueError("not a big_vision two-tower checkpoint (no params/img and params/txt)")
    return tree


def _attention(p: dict) -> dict:
    return {f"{n}_{w}": p[n][w] for n in _ATTN for w in ("kernel", "bias")}


def _attention_back(p: dict) -> dict:
    return {n: {w: p[f"{n}_{w}"] for w in ("kernel", "bias")} for n in _ATTN}


def _block(p: dict) -> dict:
    return {"ln1": dict(p["LayerNorm_0"]), "ln2": dict(p["LayerNorm_1"]),
            "attn": _attention(p["MultiHeadDotProductAttention_0"]),
            "mlp": {ours: dict(p["MlpBlock_0"][theirs]) for theirs, ours in _MLP.items()}}


def _block_back(p: dict) -> dict:
    return {"LayerNorm_0": p["ln1"], "LayerNorm_1": p["ln2"],
            "MultiHeadDotProductAttention_0": _attention_back(p["attn"]),
            "MlpBlock_0": {theirs: p["mlp"][ours] for theirs, ours in _MLP.items()}}


def _encoder(p: dict, scan: bool) -> dict:
    if "encoderblock" in p:  # scanned: split the leading depth axis
        depth = p["encoderblock"]["LayerNorm_0"]["scale"].shape[0]
        take = lambda t, i: {k: take(v, i) if isinstance(v, dict) else v[i] for k, v in t.items()}
        blocks = [take(p["encoderblock"], i) for i in range(depth)]
    else:
        blocks = [p[f"encoderblock_{i}"] for i in range(sum(k.startswith("encoderblock_")
                                                            for k in p))]
    out = {**{f"block{i}": _block(b) for i, b in enumerate(blocks)},
           "final_norm": dict(p["encoder_norm"])}
    return stack_blocks(out) if scan else out


def _encoder_back(p: dict) -> dict:
    out = {f"encoderblock_{i}": _block_back(b) for i, b in enumerate(encoder_blocks(p))}
    return {**out, "encoder_norm": p["final_norm"]}


def _depth(p: dict) -> int:
    if "encoderblock" in p:
        return p["encoderblock"]["LayerNorm_0"]["scale"].shape[0]
    return sum(k.startswith("encoderblock_") for k in p)


def big_vision_model(state_dict: dict, **overrides) -> models.DualEncoder:
    """Our DualEncoder shaped like a big_vision SigLIP checkpoint (MAP-pooled ViT image tower,
    last-token bidirectional text tower); `overrides` set fields both towers share."""
    tree = _tree(state_dict)
    img, txt = tree["img"], tree["txt"]
    if "MAPHead_0" not in img or "cls" in img:
        raise ValueError("only MAP-pooled big_vision ViTs (SigLIP's) are supported")
    enc = img["Transformer"]
    first = (enc["encoderblock"] if "encoderblock" in enc else enc["encoderblock_0"])
    q = first["MultiHeadDotProductAttention_0"]["query"]["kernel"]
    patch, _, _, width = img["embedding"]["kernel"].shape
    image = models.ViT(width=width, depth=_depth(enc), mlp_dim=img["MAPHead_0"]["MlpBlock_0"][
        "Dense_0"]["kernel"].shape[-1], num_heads=q.shape[-2], patch_size=patch, pool="map",
        posemb="learn", **overrides)
    tenc = txt["Encoder_0"]
    tfirst = tenc["encoderblock"] if "encoderblock" in tenc else tenc["encoderblock_0"]
    tq = tfirst["MultiHeadDotProductAttention_0"]["query"]["kernel"]
    vocab, text_width = txt["Embed_0"]["embedding"].shape
    text = models.TextTransformer(
        width=text_width, depth=_depth(tenc),
        mlp_dim=tfirst["MlpBlock_0"]["Dense_0"]["kernel"].shape[-1], num_heads=tq.shape[-2],
        vocab_size=vocab, max_len=txt["pos_embedding"].shape[1], causal=False, pool="last",
        mask_padding=False, **overrides)
    dims = {img["head"]["kernel"].shape[1], txt["head"]["kernel"].shape[1]}
    if len(dims) != 1:
        raise ValueError(f"image and text heads differ in width ({sorted(dims)})")
    return models.DualEncoder(image, text, embed_dim=dims.pop(), head_bias=True)


def from_big_vision(state_dict: dict, model: models.DualEncoder) -> dict:
    """big_vision two-tower params (flat, as its .npz) -> our params for `model`."""
    tree = _tree(state_dict)
    img, txt = tree["img"], tree["txt"]
    mh = img["MAPHead_0"]
    image = {
        "patch_embed": dict(img["embedding"]), "posemb": img["pos_embedding"],
        "encoder": _encoder(img["Transformer"], model.image_tower.scan),
        "map": {"probe": mh["probe"], "attn": _attention(mh["MultiHeadDotProductAttention_0"]),
                "ln": dict(mh["LayerNorm_0"]),
                "mlp": {o: dict(mh["MlpBlock_0"][t]) for t, o in _MLP.items()}},
    }
    text = {"token_embed": dict(txt["Embed_0"]), "posemb": txt["pos_embedding"][0],
            "encoder": _encoder(txt["Encoder_0"], model.text_tower.scan)}
    return {"image_tower": image, "text_tower": text,
            "image_head": {"proj": dict(img["head"])}, "text_head": {"proj": dict(txt["head"])},
            "log_scale": np.asarray(tree["t"]).reshape(()),
            "bias": np.asarray(tree.get("b", np.float32(model.bias_init))).reshape(())}


def to_big_vision(params: dict) -> dict:
    """Our params -> a flat big_vision two-tower state dict (unrolled blocks), "params/..."."""
    image, text, mh = params["image_tower"], params["text_tower"], params["image_tower"]["map"]
    tree = {
        "img": {"embedding": image["patch_embed"], "pos_embedding": image["posemb"],
                "Transformer": _encoder_back(image["encoder"]),
                "MAPHead_0": {"probe": mh["probe"], "LayerNorm_0": mh["ln"],
                              "MultiHeadDotProductAttention_0": _attention_back(mh["attn"]),
                              "MlpBlock_0": {t: mh["mlp"][o] for t, o in _MLP.items()}},
                "head": params["image_head"]["proj"]},
        "txt": {"Embed_0": text["token_embed"], "pos_embedding": np.asarray(text["posemb"])[None],
                "Encoder_0": _encoder_back(text["encoder"]), "head": params["text_head"]["proj"]},
        "t": np.asarray(params["log_scale"]).reshape(1), "b": np.asarray(params["bias"]).reshape(1),
    }
    return {f"params/{k}": v for k, v in flatten(tree).items()}
