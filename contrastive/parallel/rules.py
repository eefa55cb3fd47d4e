"""Logical-axis rules: which mesh axes each logical array axis name is split over.

Models name their axes (`contrastive.models`); this table alone turns those names into a layout,
so switching data / FSDP / tensor parallelism is a config change. Order is precedence: for an
array, rules are applied top to bottom and a mesh axis is used at most once. "batch" comes first,
so an activation named ("batch", "length", "embed") splits its batch over (data, fsdp) and keeps
"embed" whole: FSDP shards parameters, not activations' features.
"""
from typing import Mapping, Sequence

from contrastive.parallel.mesh import MESH_AXES

MeshAxes = str | tuple[str, ...] | None
Rules = tuple[tuple[str, MeshAxes], ...]

DEFAULT_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    # FSDP: parameters split along their input/feature dimension.
    ("embed", "fsdp"),
    ("conv_in", "fsdp"),
    # Tensor parallelism (Megatron): hidden units, heads, vocabulary, output channels.
    ("mlp", "model"),
    ("heads", "model"),
    ("vocab", "model"),
    ("conv_out", "model"),
    # Never split by default; listed so that every name the models use is known.
    ("kv", None),
    ("layers", None),  # the stacked-blocks axis of a scanned Transformer (models.Transformer)
    ("length", None),
    ("height", None),
    ("width", None),
    ("proj", None),
    ("classes", None),
)


def _check_mesh_axes(name: str, axes: MeshAxes) -> None:
    named = (axes,) if isinstance(axes, str) else (axes or ())
    unknown = [axis for axis in named if axis not in MESH_AXES]
    if unknown:
        raise ValueError(
            f"rule for {name!r} uses unknown mesh axes {unknown}; mesh axes are {list(MESH_AXES)}"
        )


def with_overrides(
    overrides: Mapping[str, MeshAxes] | Sequence[tuple[str, MeshAxes]],
    rules: Rules = DEFAULT_RULES,
) -> Rules:
    """`rules` with the entry of each logical name in `overrides` replaced, in place.

    >>> with_overrides({"embed": None})          # data parallel + TP, no parameter sharding
    >>> with_overrides({"mlp": ("fsdp", "model")})

    Raises ValueError for a logical name the rules do not know (a typo would otherwise leave an
    axis silently unsplit) or a mesh axis other than data, fsdp, model.
    """
    overrides = dict(overrides)
    known = [name for name, _ in rules]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown logical axes {unknown}; the rules name {known}")
    for name, axes in overrides.items():
        _check_mesh_axes(name, axes)
    return tuple((name, overrides.get(name, axes)) for name, axes in rules)


def check_rules(rules: Rules) -> None:
    """Raises ValueError unless `rules` is a sequence of (logical name, mesh axes) pairs whose
    mesh axes are data, fsdp or model."""
    for rule in rules:
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and isinstance(rule[0], str)):
            raise ValueError(f"a rule is a (logical name, mesh axes) pair, got {rule!r}")
        _check_mesh_axes(*rule)
