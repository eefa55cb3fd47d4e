"""timm parity: a tiny random timm ViT (tools/make_pretrained_fixtures.py) gives the same pooled
features through our ViT image tower; export round-trips bit-exactly."""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from contrastive import convert

FIXTURES = Path(__file__).parent / "fixtures"


def test_timm_vit_features_match_and_round_trip():
    meta = json.loads((FIXTURES / "timm_vit.json").read_text())
    sd = convert.load_state_dict(FIXTURES / "timm_vit.safetensors")
    data = np.load(FIXTURES / "timm_vit.npz")
    model = convert.timm_vit(sd, num_heads=meta["kwargs"]["num_heads"])
    params = convert.from_timm(sd, model)
    features = jax.jit(lambda p, x: model.apply({"params": p}, x))(
        params, jnp.asarray(data["images"].transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(features, data["features"], atol=1e-5, rtol=1e-5)
    back = convert.to_timm(params)
    assert set(back) == set(sd)
    for key in sd:
        np.testing.assert_array_equal(back[key], sd[key], err_msg=key)
    jax.tree.map(np.testing.assert_array_equal, convert.from_timm(back, model), params)
