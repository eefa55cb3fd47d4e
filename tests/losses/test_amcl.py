"""AMCL beyond the zoo's shared cases: its temperature map, one head with a constant
temperature is InfoNCE, and its option checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import losses
from contrastive.losses import amcl
from contrastive.losses.cases import paired


def test_similar_pairs_get_low_temperatures_within_the_range():
    s = np.linspace(-1, 1, 9)
    tau = np.asarray(amcl.temperature(s, 0.05, 0.5, 5.0))
    assert np.all(np.diff(tau) < 0) and np.all((tau > 0.05) & (tau < 0.5))
    np.testing.assert_allclose(amcl.temperature(0.0, 0.05, 0.5, 5.0), 0.275)


def test_one_head_with_sharpness_zero_and_no_omega_is_infonce_at_the_mean_temperature():
    """sharpness 0: tau = (tau_min + tau_max) / 2 for every pair; beta 0: the loss is CLIP's
    at scale 1 / tau."""
    x, y = paired(3, 20)
    with jax.enable_x64(True):
        got = losses.amcl_loss(x, y, num_heads=1, sharpness=0.0, beta=0.0, block_size=8)
        want = losses.clip_loss(x, y, 1 / 0.275)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("options,message", [
    ({"num_heads": 3}, r"num_heads=3 must divide the embedding dimension 16"),
    ({"num_heads": 0}, r"num_heads must be an int >= 1"),
    ({"tau_min": 0.6}, r"needs 0 < tau_min < tau_max"),
    ({"beta": -1.0}, r"beta must be a number >= 0"),
])
def test_bad_options_are_one_clear_error(options, message):
    with pytest.raises(ValueError, match=message):
        losses.amcl_loss(jnp.ones((4, 16)), jnp.ones((4, 16)), **options)
