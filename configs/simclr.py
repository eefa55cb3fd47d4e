"""SimCLR (Chen et al. 2020) on ImageNet or CIFAR-10 from a tfds data_dir.

`configs/simclr.py:imagenet` (ResNet-50, 224px, batch 4096, temperature 0.1) or `:cifar10`
(CIFAR-style ResNet-18 stem, 32px, batch 512, temperature 0.5, no blur), `runlocal` for a smoke run.
"""
from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, imagenet=False, cifar10=False, batch=0, runlocal=False)
    c = common.base_config()
    c.model.kind = "two_view"
    c.model.image_tower = "resnet"
    c.model.embed_dim = 128
    c.model.head_depth = 2
    c.log_every = 50
    c.eval.zero_shot = False
    c.data.data_dir = "~/tensorflow_datasets"
    c.data.text_field = ""
    c.data.worker_count = 8
    c.optimizer.weight_decay = 1e-6
    c.optimizer.b2 = 0.999
    if args.cifar10:
        c.data.name = "cifar10"
        c.data.image_size = 32
        c.data.blur_probability = 0.0
        c.data.jitter_strength = 0.5
        c.model.image_variant = "18"
        c.model.image_options = {"small_inputs": True}
        c.model.head_hidden_dim = 512
        c.model.temperature = 0.5
        c.batch_size = args.batch or 512
        c.total_steps = 98_000  # ~1000 epochs
    else:
        c.data.name = "imagenet2012"
        c.data.eval_split = "validation"
        c.data.image_size = 224
        c.model.image_variant = "50"
        c.model.temperature = 0.1
        c.model.dtype = "bfloat16"
        c.batch_size = args.batch or 4096
        c.total_steps = 31_000  # ~100 epochs
    c.optimizer.learning_rate = 1e-3 * c.batch_size / 256
    c.optimizer.warmup_steps = c.total_steps // 100
    if args.runlocal:
        common.shrink_for_smoke_run(c)
        c.model.image_options = {**c.model.image_options, "width": 8}
        c.model.head_hidden_dim = 32
    return c
