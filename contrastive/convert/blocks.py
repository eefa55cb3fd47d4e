"""PyTorch <-> flax leaf layouts shared by the converters, and checkpoint files without torch.

PyTorch stores a linear map y = x W^T + b with W: (out, in), a conv kernel as (out, in, kh, kw)
and a fused attention input projection as one (3D, D) matrix [W_q; W_k; W_v] whose rows are
head-major (head h owns rows h K .. (h+1) K - 1 of each third). Ours: Dense kernels (in, out),
conv kernels (kh, kw, in, out), attention kernels (D, H, K) in and (H, K, D) out.
"""
from pathlib import Path

import numpy as np


def load_state_dict(path) -> dict[str, np.ndarray]:
    """A checkpoint file as {name: numpy array}, without torch: `.safetensors` (safetensors'
    numpy API), `.npz`, or a `torch.save` zip (`.bin`, `.pt`, `.pth`) through a restricted
    unpickler that builds only tensors and dicts (`convert.torch_pickle`)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file
        return load_file(str(path))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if path.suffix in (".bin", ".pt", ".pth"):
        from contrastive.convert.torch_pickle import load_torch_pickle
        return load_torch_pickle(path)
    raise ValueError(f"checkpoint {path}: read .safetensors, .npz or a torch .bin/.pt/.pth")


def save_state_dict(state: dict, path):
    """Writes {name: array} as `.safetensors` (readable by torch's safetensors.torch)."""
    from safetensors.numpy import save_file
    save_file({k: np.array(v, order="C") for k, v in state.items()}, str(path))  # keeps 0-d


def dense(w, b=None) -> dict:
    out = {"kernel": np.asarray(w).T}
    if b is not None:
        out["bias"] = np.asarray(b)
    return out


def dense_back(p: dict, prefix: str) -> dict:
    out = {f"{prefix}.weight": np.asarray(p["kernel"]).T}
    if "bias" in p:
        out[f"{prefix}.bias"] = np.asarray(p["bias"])
    return out


def norm(w, b) -> dict:
    return {"scale": np.asarray(w), "bias": np.asarray(b)}


def norm_back(p: dict, prefix: str) -> dict:
    return {f"{prefix}.weight": np.asarray(p["scale"]), f"{prefix}.bias": np.asarray(p["bias"])}


def conv(w) -> np.ndarray:
    return np.asarray(w).transpose(2, 3, 1, 0)


def conv_back(kernel) -> np.ndarray:
    return np.asarray(kernel).transpose(3, 2, 0, 1)


def attention(in_w, in_b, out_w, out_b, num_heads: int) -> dict:
    """A fused (3D, D) input projection and a (D, D) output projection -> our attention."""
    width = in_w.shape[1]
    head = width // num_heads
    params = {}
    for name, w, b in zip(("query", "key", "value"), np.split(np.asarray(in_w), 3),
                          np.split(np.asarray(in_b), 3)):
        params[f"{name}_kernel"] = w.T.reshape(width, num_heads, head)
        params[f"{name}_bias"] = b.reshape(num_heads, head)
    params["out_kernel"] = np.asarray(out_w).T.reshape(num_heads, head, width)
    params["out_bias"] = np.asarray(out_b)
    return params


def attention_back(p: dict) -> tuple:
    """Our attention -> (in_w (3D, D), in_b (3D,), out_w (D, D), out_b (D,))."""
    width = p["query_kernel"].shape[0]
    names = ("query", "key", "value")
    in_w = np.concatenate([np.asarray(p[f"{n}_kernel"]).reshape(width, -1).T for n in names])
    in_b = np.concatenate([np.asarray(p[f"{n}_bias"]).reshape(-1) for n in names])
    out_w = np.asarray(p["out_kernel"]).reshape(-1, width).T
    return in_w, in_b, out_w, np.asarray(p["out_bias"])


def encoder(blocks: list[dict], final: dict) -> dict:
    """Our `Transformer`'s params from per-block dicts (unrolled: block0, block1, ...)."""
    return {**{f"block{i}": b for i, b in enumerate(blocks)}, "final_norm": final}


def encoder_blocks(params: dict) -> list[dict]:
    """The per-block dicts of our `Transformer`'s params, unrolled or scanned ("blocks")."""
    if "blocks" in params:
        stacked = params["blocks"]
        depth = np.asarray(stacked["ln1"]["scale"]).shape[0]
        take = lambda tree, i: {k: take(v, i) if isinstance(v, dict) else np.asarray(v)[i]
                                for k, v in tree.items()}
        return [take(stacked, i) for i in range(depth)]
    return [params[f"block{i}"] for i in range(sum(k.startswith("block") for k in params))]


def stack_blocks(params: dict) -> dict:
    """Unrolled `Transformer` params -> the scanned layout (Transformer.scan=True)."""
    blocks = encoder_blocks(params)
    stack = lambda *trees: ({k: stack(*[t[k] for t in trees]) for k in trees[0]}
                            if isinstance(trees[0], dict) else np.stack(trees))
    return {"blocks": stack(*blocks), "final_norm": params["final_norm"]}


# The names of one pre-LN block's tensors in a PyTorch state dict: OpenCLIP's and timm's.
OPENCLIP_BLOCK = dict(ln1="ln_1", ln2="ln_2", qkv="attn.in_proj_", out="attn.out_proj",
                      fc1="mlp.c_fc", fc2="mlp.c_proj")
TIMM_BLOCK = dict(ln1="norm1", ln2="norm2", qkv="attn.qkv.", out="attn.proj", fc1="mlp.fc1",
                  fc2="mlp.fc2")


def block(sd: dict, prefix: str, names: dict, num_heads: int) -> dict:
    """One PyTorch pre-LN block (`prefix` ends with '.') -> our EncoderBlock's params."""
    get = lambda key: sd[prefix + key]
    return {
        "ln1": norm(get(f"{names['ln1']}.weight"), get(f"{names['ln1']}.bias")),
        "attn": attention(get(f"{names['qkv']}weight"), get(f"{names['qkv']}bias"),
                          get(f"{names['out']}.weight"), get(f"{names['out']}.bias"), num_heads),
        "ln2": norm(get(f"{names['ln2']}.weight"), get(f"{names['ln2']}.bias")),
        "mlp": {"fc1": dense(get(f"{names['fc1']}.weight"), get(f"{names['fc1']}.bias")),
                "fc2": dense(get(f"{names['fc2']}.weight"), get(f"{names['fc2']}.bias"))},
    }


def block_back(p: dict, prefix: str, names: dict) -> dict:
    in_w, in_b, out_w, out_b = attention_back(p["attn"])
    return {
        **norm_back(p["ln1"], prefix + names["ln1"]),
        f"{prefix}{names['qkv']}weight": in_w, f"{prefix}{names['qkv']}bias": in_b,
        f"{prefix}{names['out']}.weight": out_w, f"{prefix}{names['out']}.bias": out_b,
        **norm_back(p["ln2"], prefix + names["ln2"]),
        **dense_back(p["mlp"]["fc1"], prefix + names["fc1"]),
        **dense_back(p["mlp"]["fc2"], prefix + names["fc2"]),
    }


def depth(sd: dict, prefix: str) -> int:
    """How many blocks `prefix`0., `prefix`1., ... the state dict holds."""
    return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """{"image_tower": {"cls": a}} -> {"image_tower/cls": a}: our params as a flat state dict."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        else:
            out[name] = np.asarray(value)
    return out


def unflatten(flat: dict) -> dict:
    """The inverse of `flatten`."""
    tree = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree
