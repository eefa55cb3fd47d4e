"""A checkpoint file in any supported format -> our params for a given model (numpy trees)."""
from contrastive.convert.big_vision import from_big_vision
from contrastive.convert.blocks import load_state_dict, unflatten
from contrastive.convert.openclip import from_openclip
from contrastive.convert.timm import from_timm

FILE_FORMATS = ("flat", "openclip", "big_vision", "timm")


def read_params(path, fmt: str, model) -> dict:
    """Our (partial) params tree from `path`: "flat" (our '/'-joined names), "openclip" or
    "big_vision" (a DualEncoder), "timm" (only {"image_tower": ...})."""
    if fmt not in FILE_FORMATS:
        raise ValueError(f"pretrained format must be one of {', '.join(FILE_FORMATS)}, "
                         f"got {fmt!r}")
    state_dict = load_state_dict(path)
    if fmt == "flat":
        return unflatten(state_dict)
    if fmt == "openclip":
        return from_openclip(state_dict, model)
    if fmt == "big_vision":
        return from_big_vision(state_dict, model)
    return {"image_tower": from_timm(state_dict, model.image_tower)}
