"""CoCa (Yu et al. 2022) on the embedded digits captions: digits_clip's towers and recipe plus a
captioning decoder that cross-attends to the ViT's patch tokens; the loss is CLIP's
contrastive loss + caption_weight x the captions' next-token cross-entropy. The evaluation
adds greedy captions of the held-out digits (caption_exact_match, caption_token_accuracy;
examples in the workdir's captions.json).

  python -m contrastive.main --config=configs/digits_coca.py --workdir=/tmp/digits_coca
  ... --config=configs/digits_coca.py:runlocal   (a few steps, for smoke tests)
"""
from configs import common, digits_clip


def get_config(arg=None):
    args = common.parse_arg(arg, runlocal=False, caption_weight=1.0)
    c = digits_clip.get_config("runlocal" if args.runlocal else None)
    c.model.caption_weight = args.caption_weight
    c.model.captioner = {"width": 64, "depth": 2, "mlp_dim": 128, "num_heads": 2}
    return c
