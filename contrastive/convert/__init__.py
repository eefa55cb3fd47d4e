"""Published checkpoints in and out: OpenCLIP CLIP models, big_vision SigLIP two-tower .npz
and timm ViTs <-> our models.

Numpy only (safetensors' numpy API reads the files): no torch at run time.

>>> sd = load_state_dict("open_clip_model.safetensors")
>>> model = openclip_model(sd, quick_gelu=False)
>>> params = from_openclip(sd, model)       # model.apply({"params": params}, images, tokens)
>>> save_state_dict(to_openclip(params), "back.safetensors")
"""
from contrastive.convert.big_vision import big_vision_model, from_big_vision, to_big_vision
from contrastive.convert.blocks import flatten, load_state_dict, save_state_dict, unflatten
from contrastive.convert.formats import FILE_FORMATS, read_params
from contrastive.convert.openclip import from_openclip, openclip_model, to_openclip
from contrastive.convert.timm import from_timm, timm_vit, to_timm

__all__ = ["big_vision_model", "from_big_vision", "to_big_vision", "flatten", "unflatten",
           "load_state_dict", "save_state_dict", "from_openclip", "openclip_model", "to_openclip",
           "from_timm", "timm_vit", "to_timm", "FILE_FORMATS", "read_params"]
