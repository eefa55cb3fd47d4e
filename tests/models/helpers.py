"""Shared test utilities: fast random keys and jitted init/apply."""
import functools

import jax


def rng(seed: int = 0) -> jax.Array:
    """A typed key with the "rbg" generator: XLA compiles its random bits far faster on CPU than
    threefry's, and these tests only need some random parameters."""
    return jax.random.key(seed, impl="rbg")


def init(model, *inputs, seed: int = 0, **kwargs):
    return jax.jit(functools.partial(model.init, **kwargs))(rng(seed), *inputs)


def apply(model, variables, *inputs, **kwargs):
    """model.apply under jit; keyword arguments (train, method, mutable) are static."""
    return jax.jit(functools.partial(model.apply, **kwargs))(variables, *inputs)
