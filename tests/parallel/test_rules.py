import flax.linen as nn
import pytest
from jax.sharding import PartitionSpec as P

from contrastive.parallel import DEFAULT_RULES, check_rules, with_overrides

BATCH = ("data", "fsdp")


@pytest.mark.parametrize(
    "names, expected",
    [
        # Parameters: FSDP splits the feature ("embed") side, tensor parallelism the hidden side.
        (("embed", "mlp"), P("fsdp", "model")),
        (("mlp", "embed"), P("model", "fsdp")),
        (("embed", "heads", "kv"), P("fsdp", "model", None)),
        (("vocab", "embed"), P("model", "fsdp")),
        ((None, None, "conv_in", "conv_out"), P(None, None, "fsdp", "model")),
        (("embed", "proj"), P("fsdp", None)),
        # Activations: the batch takes (data, fsdp) first, so "embed" stays whole...
        (("batch", "length", "embed"), P(BATCH, None, None)),
        (("batch", "embed"), P(BATCH, None)),
        # ... while tensor-parallel hidden units and heads stay split over "model".
        (("batch", "length", "mlp"), P(BATCH, None, "model")),
        (("batch", "length", "heads", "kv"), P(BATCH, None, "model", None)),
        (("batch", "height", "width", "conv_out"), P(BATCH, None, None, "model")),
    ],
)
def test_default_rules(names, expected):
    assert nn.logical_to_mesh_axes(names, DEFAULT_RULES) == expected


def test_overrides_replace_in_place():
    rules = with_overrides({"embed": None, "mlp": ("fsdp", "model")})
    assert [name for name, _ in rules] == [name for name, _ in DEFAULT_RULES]
    assert dict(rules)["embed"] is None and dict(rules)["mlp"] == ("fsdp", "model")
    assert dict(rules)["heads"] == "model"
    assert nn.logical_to_mesh_axes(("embed", "mlp"), rules) == P(None, ("fsdp", "model"))
    assert with_overrides([("vocab", None)]) == with_overrides({"vocab": None})


def test_bad_overrides_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown logical axes \['embd'\]; the rules name \['batch', 'embed'"):
        with_overrides({"embd": "fsdp"})
    with pytest.raises(ValueError, match=r"rule for 'mlp' uses unknown mesh axes \['tensor'\]"):
        with_overrides({"mlp": ("tensor",)})


def test_check_rules():
    check_rules(DEFAULT_RULES)
    with pytest.raises(ValueError, match="a rule is a \\(logical name, mesh axes\\) pair"):
        check_rules((("embed", "fsdp", "model"),))
    with pytest.raises(ValueError, match=r"rule for 'embed' uses unknown mesh axes \['pipe'\]"):
        check_rules((("embed", "pipe"),))
