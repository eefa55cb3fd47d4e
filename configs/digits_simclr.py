"""SimCLR on the digits images: a small ResNet, two augmented views, NT-Xent (clip_loss on the
two views' embeddings with a fixed temperature). Evaluated by kNN top-1 on the held-out digits."""
from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, runlocal=False)
    c = common.base_config()
    common.digits_schedule(c)
    c.model.kind = "two_view"
    c.model.image_tower = "resnet"
    c.model.image_variant = "18"
    c.model.image_options = {"width": 8, "small_inputs": True, "stage_sizes": (1, 1, 1, 1)}
    c.model.embed_dim = 32
    c.model.head_hidden_dim = 64
    c.model.temperature = 0.2
    c.optimizer.weight_decay = 1e-4
    c.data.crop_scale = (0.5, 1.0)  # digits are 8x8: keep most of the stroke
    c.data.jitter_strength = 0.5
    c.data.blur_probability = 0.0  # as SimCLR on CIFAR
    c.eval.zero_shot = False
    if args.runlocal:
        common.shrink_for_smoke_run(c)
    return c
