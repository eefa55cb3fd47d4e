"""An OpenCLIP ViT CLIP model from its weights file (safetensors, as the Hugging Face hub holds
`open_clip_model.safetensors`): fine-tune it on image-text data, or LiT-train a text tower
against its locked image tower, evaluating zero-shot on labelled tfds datasets as it goes.

  python -m contrastive.main --workdir=/tmp/b32_coco --config=configs/openclip.py:\\
      model=ViT-B-32,pretrained=open_clip_model.safetensors,data_dir=/data/tfds
  ... configs/openclip.py:...,lock_image     (LiT: the image tower locked, the text tower trained)
  ... --config.eval.zero_shot_datasets='[{"name": "cifar10", "data_dir": "/data/tfds"}]'

quick_gelu for OpenAI's weights and `-quickgelu` model names. The host sends (p - 0.5) / 0.5
pixels; the model renormalises them to OpenAI's statistics (model.pixel_mean / pixel_std).
"""
from configs import common
from contrastive.convert.openclip import OPENAI_MEAN, OPENAI_STD

# OpenCLIP name -> (our ViT "size/patch", text size, embedding width).
VARIANTS = {"ViT-B-32": ("B/32", "B", 512), "ViT-B-16": ("B/16", "B", 512),
            "ViT-L-14": ("L/14", "L", 768), "ViT-H-14": ("H/14", "H", 1024)}
TEMPLATES = ("a photo of a {}.", "a blurry photo of a {}.", "a photo of the large {}.",
             "a photo of the small {}.", "a low resolution photo of a {}.")


def get_config(arg=None):
    args = common.parse_arg(arg, model="ViT-B-32", pretrained="", quick_gelu=False,
                            data="coco_captions", data_dir="", batch=256, steps=1000, lr=1e-5,
                            lock_image=False)
    if args.model not in VARIANTS:
        raise ValueError(f"model {args.model!r}: one of {', '.join(VARIANTS)}")
    image, text, embed_dim = VARIANTS[args.model]
    act = "quick_gelu" if args.quick_gelu else "gelu"
    c = common.base_config()
    c.model.image_variant = image
    c.model.image_options = dict(act=act, norm_eps=1e-5, pre_norm=True, patch_bias=False)
    c.model.text_variant = text
    c.model.text_options = dict(act=act, norm_eps=1e-5, mask_padding=False)
    c.model.embed_dim = embed_dim
    c.model.pixel_mean, c.model.pixel_std = OPENAI_MEAN, OPENAI_STD
    c.model.pretrained = args.pretrained or None
    c.model.pretrained_format = "openclip"
    c.data.name = args.data
    c.data.data_dir = args.data_dir or None
    c.data.image_size = 224
    c.data.tokenizer = "clip"
    c.data.max_len = 77
    c.data.eval_split = "val"
    c.eval.templates = TEMPLATES
    c.eval.zero_shot = False  # captions, not labels: zero-shot runs on eval.zero_shot_datasets
    c.batch_size = args.batch
    c.total_steps = args.steps
    c.optimizer.learning_rate = args.lr
    c.optimizer.warmup_steps = min(500, args.steps // 10)
    c.optimizer.weight_decay = 0.1
    if args.lock_image:
        c.optimizer.locked_towers = ("image",)
    return c
