"""SigLIP at scale (Zhai et al. 2023): the CLIP recipe with the sigmoid loss, MAP pooling,
a bidirectional text tower and SigLIP's initial temperature 0.1 and bias -10.

Variants as in `clip.py` (`configs/siglip.py:vit_b16,batch=32768`).
"""
from configs import clip


def get_config(arg=None):
    c = clip.get_config(arg)
    c.loss = "siglip"
    c.model.image_options = {**c.model.image_options, "pool": "map", "posemb": "sincos2d"}
    c.model.text_options = {**c.model.text_options, "causal": False, "pool": "mean"}
    c.model.temperature_init = 0.1
    c.model.bias_init = -10.0
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.b2 = 0.95
    return c
