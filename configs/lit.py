"""LiT (Zhai et al. 2022, "LiT: Zero-Shot Transfer with Locked-image text Tuning"): the image
tower (and its head) come pretrained and stay locked (no updates, no Adam moments, no backward
pass); the text tower learns to read the locked image embeddings. With loss=cwcl, CWCL
(Srinivasa et al. 2023): the locked tower's image-image similarities weight the targets.

On the digits, from a CLIP run of configs/digits_clip.py:
  python -m contrastive.main --config=configs/digits_clip.py --workdir=/tmp/digits_clip
  python -m contrastive.main --config=configs/lit.py:pretrained=/tmp/digits_clip \\
      --workdir=/tmp/digits_lit
  ... --config=configs/lit.py:pretrained=/tmp/digits_clip,loss=cwcl --workdir=/tmp/digits_cwcl
From a published image tower (its architecture set through model.image_options), e.g. timm's:
  ... configs/lit.py:pretrained=vit.safetensors,format=timm --config.model.image_options=...
"""
from configs import common, digits_clip


def get_config(arg=None):
    args = common.parse_arg(arg, pretrained="", format="run", loss="clip", text_lr=1.0,
                            runlocal=False)
    c = digits_clip.get_config("runlocal" if args.runlocal else None)
    c.model.pretrained = args.pretrained or None  # required: the run or file to start from
    c.model.pretrained_format = args.format
    c.model.pretrained_towers = ("image",)  # the text tower starts from scratch
    c.optimizer.locked_towers = ("image",)
    if args.text_lr != 1.0:
        c.optimizer.lr_multipliers = {"text": args.text_lr}
    c.loss = args.loss
    return c
