"""big_vision parity: a tiny random SigLIP two-tower model built and run by big_vision's own
code (tools/make_big_vision_fixture.py) gives the same embeddings through our DualEncoder."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from contrastive import convert

FIXTURES = Path(__file__).parent / "fixtures"


def test_siglip_embeddings_match_big_vision_and_export_round_trips():
    sd = convert.load_state_dict(FIXTURES / "big_vision_siglip.npz")
    data = np.load(FIXTURES / "big_vision_siglip_io.npz")
    model = convert.big_vision_model(sd)
    params = convert.from_big_vision(sd, model)

    def run(m, images, tokens):
        return (m.image_head(m.image_tower(images)), m.text_head(m.text_tower(tokens)),
                m(images, tokens))

    x, y, (ux, uy) = jax.jit(lambda p, i, t: model.apply({"params": p}, i, t, method=run))(
        params, jnp.asarray(data["images"]), jnp.asarray(data["tokens"]))
    np.testing.assert_allclose(x, data["img_logits"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(y, data["txt_logits"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ux, data["zimg"], atol=1e-5)
    np.testing.assert_allclose(uy, data["ztxt"], atol=1e-5)
    np.testing.assert_array_equal(params["log_scale"], sd["params/t"][0])
    back = convert.to_big_vision(params)
    assert set(back) == set(sd)
    for key in sd:
        np.testing.assert_array_equal(back[key], sd[key], err_msg=key)


def test_scanned_checkpoints_read_like_unrolled_ones():
    """Released SigLIP checkpoints are scanned: one "encoderblock" with a leading depth axis
    (big_vision's pyloop_to_scan stacks encoderblock_0..N-1 so)."""
    sd = convert.load_state_dict(FIXTURES / "big_vision_siglip.npz")
    scanned = {}
    for key, value in sd.items():
        parts = key.split("/")
        blocks = [i for i, p in enumerate(parts) if p.startswith("encoderblock_")]
        if not blocks:
            scanned[key] = value
            continue
        i = blocks[0]
        name = "/".join(parts[:i] + ["encoderblock"] + parts[i + 1:])
        depth = sum(k.startswith("/".join(parts[:i]) + "/encoderblock_") and k.endswith(
            "/".join(parts[i + 1:])) for k in sd)
        scanned[name] = np.stack([sd["/".join(parts[:i] + [f"encoderblock_{d}"] + parts[i + 1:])]
                                  for d in range(depth)])
    model = convert.big_vision_model(scanned)
    assert model.image_tower.depth == convert.big_vision_model(sd).image_tower.depth
    jax.tree.map(np.testing.assert_array_equal, convert.from_big_vision(scanned, model),
                 convert.from_big_vision(sd, model))
