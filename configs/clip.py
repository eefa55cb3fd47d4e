"""CLIP at scale (Radford et al. 2021) on an image-text tfds dataset from a data_dir.

Variants: `configs/clip.py:vit_b16,batch=65536`; sizes vit_b32, vit_b16, vit_l14; `runlocal`
shrinks everything for a smoke run. The text tower reads CLIP's BPE (OpenCLIP's tokenizer, 49,408
ids, shipped with the package); training crops are OpenCLIP's random-resized ones.

img2dataset shards instead of the tfds dataset: two fields,
  --config.data.name=webdataset --config.data.shards='/data/laion/{00000..00999}.tar'
"""
from configs import common

# Image tower, text tower and embedding width of CLIP's models.
VARIANTS = {
    "vit_b32": ("B/32", "B", 512),
    "vit_b16": ("B/16", "B", 512),
    "vit_l14": ("L/14", "L", 768),
    "so400m14": ("So400m/14", "So400m", 1152),  # SigLIP's shape-optimised towers
}


def get_config(arg=None):
    args = common.parse_arg(
        arg, vit_b32=False, vit_b16=False, vit_l14=False, so400m14=False, batch=32768,
        steps=100_000, runlocal=False,
    )
    chosen = [name for name in VARIANTS if args[name]] or ["vit_b16"]
    if len(chosen) > 1:
        raise ValueError(f"choose one model variant, got {chosen}")
    image_size, text_size, embed_dim = VARIANTS[chosen[0]]
    c = common.base_config()
    c.total_steps = args.steps
    c.batch_size = args.batch
    c.log_every = 50
    c.eval_every = 5000
    c.checkpoint_every = 2000
    c.mesh = {"data": -1}  # e.g. {"fsdp": -1} or {"data": -1, "model": 4} for large towers
    c.model.image_variant = image_size
    c.model.text_variant = text_size
    # Options for pod scale (contrastive.models.Transformer): {"scan": True, "head_chunks": H}
    # in image_options / text_options; measured memory-neutral for B/16 at 1,024 per v5e chip
    # (experiments/results/pod_compile.md), so off by default.
    c.model.text_options = {"vocab_size": 49_408, "max_len": 77}  # CLIP's BPE
    c.model.embed_dim = embed_dim
    c.model.dtype = "bfloat16"
    c.model.remat = True
    c.optimizer.learning_rate = 5e-4
    c.optimizer.warmup_steps = 2000
    c.optimizer.weight_decay = 0.2
    c.data.name = "coco_captions"
    c.data.data_dir = "~/tensorflow_datasets"
    c.data.eval_split = "val"
    c.data.image_size = 224
    c.data.max_len = 77
    c.data.tokenizer = "clip"
    c.data.train_crop = "random_resized"
    c.data.worker_count = 8
    c.eval.zero_shot = False  # captions have no classes; retrieval comes with the eval suite
    if args.runlocal:
        common.shrink_for_smoke_run(c)
        c.model.image_variant = "mu/16"
        c.model.text_variant = "mu"
        c.model.embed_dim = 32
        c.model.dtype = "float32"
    return c
