"""The default main job: CLIP on the embedded digits captions, on a laptop CPU in ~a minute.

A tiny ViT (8x8 images, 2x2 patches) and a tiny text Transformer; zero-shot top-1 on the
held-out digits with the caption templates as the prompt ensemble.

  python -m contrastive.main --config=configs/digits_clip.py --workdir=/tmp/digits_clip
  ... --config=configs/digits_clip.py:runlocal   (a few steps, for smoke tests)
"""
from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, runlocal=False)
    c = common.base_config()
    common.digits_schedule(c)
    c.log_every = 20  # every step is still recorded; fetching them in groups keeps dispatch async
    c.model.image_variant = "mu/2"  # width 32, 1 block, 2x2 patches: 16 patches + cls
    c.model.image_options = {"width": 64, "mlp_dim": 128, "num_heads": 2, "depth": 2}
    c.model.text_variant = "mu"
    c.model.text_options = {"width": 64, "mlp_dim": 128, "num_heads": 2, "depth": 1}
    c.model.embed_dim = 64
    c.optimizer.weight_decay = 0.05
    if args.runlocal:
        common.shrink_for_smoke_run(c)
    return c
