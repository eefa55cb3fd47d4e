"""Parity fixture made by big_vision's own two-tower model (SigLIP's: ViT with MAP pooling, a
bidirectional text Transformer pooled at the last token, both with biased heads, t and b):
a tiny randomly initialised model, its params saved flattened as big_vision's .npz checkpoints
name them ("img/Transformer/encoderblock_0/...") and its embeddings for fixed inputs.

Needs jax, flax, einops, absl-py, ml_collections and a big_vision checkout (the source is not
installable; TensorFlow is not needed for the model code, so `tensorflow.io.gfile` is stubbed):

    python tools/make_big_vision_fixture.py /path/to/big_vision   # the repo root

Writes tests/convert/fixtures/big_vision_siglip.{npz,json}. Made with big_vision at commit
0127fb6b (2025-05-19), jax and flax as recorded in the json.
"""
import json
import sys
import types
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "convert" / "fixtures"


def _stub_tensorflow():
    tf = types.ModuleType("tensorflow")
    tf.io = types.ModuleType("tensorflow.io")
    tf.io.gfile = types.ModuleType("tensorflow.io.gfile")
    sys.modules.update({"tensorflow": tf, "tensorflow.io": tf.io,
                        "tensorflow.io.gfile": tf.io.gfile})


def main(big_vision_root: str):
    import flax  # before the stub: flax probes for a real tensorflow
    import flax.training.checkpoints  # noqa: F401
    import jax
    import jax.numpy as jnp
    _stub_tensorflow()
    sys.path.insert(0, big_vision_root)
    from big_vision.models.proj.image_text import two_towers

    config = dict(
        image=dict(variant="mu/8", pool_type="map", head_zeroinit=False),
        text=dict(variant="mu", vocab_size=64),
        out_dim=(24, 24), temperature_init=10.0, bias_init=-10.0)
    model = two_towers.Model(**config)
    rng = np.random.default_rng(3)
    images = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    # SigLIP pads with its EOS id 1 ("sticky" EOS) and pools at the last position.
    tokens = np.ones((4, 8), np.int32)
    for i, n in enumerate([3, 7, 1, 5]):
        tokens[i, :n] = rng.integers(2, 64, n)
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(images), jnp.asarray(tokens))["params"]
    # Non-trivial LayerNorm gains/biases and head biases (init leaves them at 1 and 0).
    key = iter(jax.random.split(jax.random.PRNGKey(1), 1000))
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p + 0.1 * jax.random.normal(next(key), p.shape)
        if p.ndim == 1 and str(path[-1].key) in ("scale", "bias") else p, params)
    zimg, ztxt, out = model.apply({"params": params}, jnp.asarray(images), jnp.asarray(tokens))
    flat = {"/".join(str(k.key) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    np.savez(OUT / "big_vision_siglip.npz", **{f"params/{k}": v for k, v in flat.items()})
    np.savez(OUT / "big_vision_siglip_io.npz", images=images, tokens=tokens,
             zimg=np.asarray(zimg), ztxt=np.asarray(ztxt),
             img_logits=np.asarray(out["img/logits"]), txt_logits=np.asarray(out["txt/logits"]))
    meta = dict(library="big_vision", commit="0127fb6b337ee2a27bf4e54dea79cff176527356",
                config=config, jax=jax.__version__, flax=flax.__version__)
    (OUT / "big_vision_siglip.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(sorted(flat)[:6], len(flat))


if __name__ == "__main__":
    main(sys.argv[1])
