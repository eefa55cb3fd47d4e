"""SigLIP on the digits captions: the digits_clip model and schedule with the sigmoid loss.

SigLIP starts at temperature 0.1 (scale 10) and bias -10 (Zhai et al. 2023).
"""
from configs import common
from configs import digits_clip


def get_config(arg=None):
    args = common.parse_arg(arg, runlocal=False)
    c = digits_clip.get_config()
    c.loss = "siglip"
    c.model.temperature_init = 0.1
    c.model.bias_init = -10.0
    if args.runlocal:
        common.shrink_for_smoke_run(c)
    return c
