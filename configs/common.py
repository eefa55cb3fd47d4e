"""Shared defaults for every experiment, and the parser for variant arguments.

A config file defines `get_config(arg=None)`: it starts from `base_config()`, changes the few
fields its experiment needs, and reads its variant from `parse_arg` (`configs/clip.py:vit_b16,
batch=65536`). Every field is commented here, once.
"""
import ml_collections
from ml_collections import config_dict


def parse_arg(arg: str | None, **defaults):
    """Typed short arguments: "vit_b16,batch=65536,runlocal" -> ConfigDict.

    Each default's type converts the given value (a bare name sets a bool default to True); a
    name without a default is an error that lists the known ones.
    """
    parsed = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        name, has_value, value = item.partition("=")
        if name not in defaults:
            raise ValueError(f"unknown config argument {name!r}; known: {sorted(defaults)}")
        kind = type(defaults[name])
        if kind is bool:
            parsed[name] = (value.lower() in ("1", "true", "yes")) if has_value else True
        elif not has_value:
            raise ValueError(f"config argument {name!r} needs a value ({name}=...)")
        else:
            parsed[name] = kind(value)
    return parsed


def base_config() -> ml_collections.ConfigDict:
    """Every field a config may set, with defaults for a CLIP-style image-text run."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # initialisation, data order and per-step RNG all derive from it
    c.total_steps = 10_000  # optimiser updates in the whole run
    c.batch_size = 4096  # global batch (all processes, all micro-batches)
    c.num_microbatches = 1  # k > 1: contrastive gradient accumulation over k micro-batches
    c.log_every = 1  # write metrics.jsonl every this many steps (every step is recorded)
    c.eval_every = 1000  # evaluate every this many steps, and at the end (0: only at the end)
    c.checkpoint_every = 1000  # checkpoint every this many steps, and at the end (0: only end)
    c.keep_checkpoints = 3  # the last this many checkpoints are kept
    c.async_checkpoints = True  # write checkpoints in the background while training goes on
    c.plots = True  # PNG plots of the loss and evaluation curves at the end
    c.progress_bar = True  # tqdm bar on process 0
    # "START:END": a jax.profiler trace of steps START..END-1 into workdir/tensorboard ("": off)
    c.profile_steps = ""
    # Mesh axis sizes ("data", "fsdp", "model"); one may be -1 (all remaining devices).
    c.mesh = {"data": -1}
    # Overrides of the logical-axis rules, e.g. {"embed": None} (see contrastive.parallel.rules).
    c.sharding_rules = {}
    c.loss = "clip"  # a name in LOSSES of contrastive/train/losses.py (one record per loss)
    # The loss's options, e.g. {"beta": 1.0} (hard_negative), {"sigma": 0.5} (dcl -> DCLW): its
    # function's keyword arguments (an unknown one is refused, the valid ones listed).
    c.loss_options = {}
    c.loss_block_size = config_dict.placeholder(int)  # loss tile edge; None lets the engine choose
    # Metrix embedding mixup (contrastive/train/mixup.py): alpha > 0 adds weight x the loss of
    # anchors mixed with the next row's, lambda ~ Beta(alpha, alpha), targets mixed alike.
    c.mixup = ml_collections.ConfigDict({"alpha": 0.0, "weight": 1.0})

    c.model = ml_collections.ConfigDict()
    c.model.kind = "image_text"  # "image_text" (dual encoder) or "two_view" (SimCLR siamese)
    c.model.image_tower = "vit"  # "vit" or "resnet"
    c.model.image_variant = "B/16"  # ViT "size/patch" or ResNet depth ("18", "50")
    c.model.image_options = {}  # any other tower field, e.g. {"pool": "map"}
    c.model.text_variant = "B"  # text Transformer size (contrastive.models.TEXT_SIZES)
    c.model.text_options = {}  # any other text tower field, e.g. {"causal": False}
    c.model.embed_dim = 512  # dimension of the shared embedding space
    c.model.head_hidden_dim = 2048  # two_view (and image_text with mlp_head): MLP head width
    c.model.head_depth = 2  # two_view (and image_text with mlp_head): layers of the MLP head
    c.model.mlp_head = False  # image_text: MLP projection heads instead of CLIP's linear ones
    c.model.temperature_init = 0.07  # image_text: initial learnable temperature 1/scale
    c.model.learn_temperature = True  # image_text: False keeps 1/scale at temperature_init
    c.model.bias_init = -10.0  # image_text: initial learnable bias (used by siglip only)
    c.model.max_scale = 100.0  # image_text: the scale exp(log_scale) is clipped here (CLIP)
    c.model.temperature = 0.1  # two_view: fixed NT-Xent temperature
    c.model.num_views = 2  # two_view: augmented views per image; > 2 needs a multi-view loss
    # two_view: K > 0 learnable unit prototypes (SwAV): the views' outputs are their (B, K)
    # cosine scores against them, which a loss reading prototype scores needs (swav); 0: none
    c.model.num_prototypes = 0
    c.model.dtype = "float32"  # compute dtype ("bfloat16" for mixed precision; params float32)
    c.model.remat = False  # recompute block activations in the backward pass
    c.model.head_bias = False  # image_text: projection heads with a bias (big_vision's SigLIP)
    # image_text: the pixel statistics the model was trained with (OpenAI's for OpenCLIP ViTs);
    # the host always sends (p - 0.5) / 0.5 and the model renormalises on the device.
    c.model.pixel_mean = (0.5, 0.5, 0.5)
    c.model.pixel_std = (0.5, 0.5, 0.5)
    # image_text, CoCa (Yu et al. 2022): > 0 adds a captioning decoder (cross-attending to the
    # ViT's patch tokens) and this x its next-token cross-entropy to the loss; 0: no decoder.
    c.model.caption_weight = 0.0
    # The decoder's width, blocks, MLP width and heads (also "act", "norm_eps"); its vocabulary
    # and length are the text tower's. Read only when caption_weight > 0.
    c.model.captioner = {"width": 512, "depth": 6, "mlp_dim": 2048, "num_heads": 8}
    # Step-0 weights (fine-tuning, LiT): a .safetensors/.npz file or one of our runs' workdirs,
    # read as pretrained_format "run" (a workdir: its last checkpoint), "flat" (our names,
    # "image_tower/encoder/block0/..."), "openclip" (an OpenCLIP state dict; the towers must be
    # built like it, see contrastive.convert.openclip), "big_vision" (a SigLIP two-tower .npz)
    # or "timm" (a timm ViT: the image tower).
    c.model.pretrained = config_dict.placeholder(str)
    c.model.pretrained_format = "run"
    c.model.pretrained_towers = ("image", "text")  # each with its head; both: also the scalars

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.learning_rate = 5e-4  # peak learning rate (AdamW)
    c.optimizer.warmup_steps = 500  # linear warm-up from 0 to the peak
    c.optimizer.end_learning_rate_fraction = 0.0  # cosine decays to peak * this
    c.optimizer.weight_decay = 0.2  # decoupled decay on weight matrices only
    c.optimizer.b1 = 0.9  # Adam first-moment decay
    c.optimizer.b2 = 0.98  # Adam second-moment decay
    c.optimizer.eps = 1e-6  # Adam epsilon
    c.optimizer.grad_clip_norm = 1.0  # clip the global gradient norm (0: off)
    # Locking (LiT): "image" and/or "text": the tower and its head get no updates, no Adam
    # moments and no backward pass. frozen_patterns: regexes fully matching parameter paths
    # ("image_tower/encoder/block0/.*") that get no updates and no moments either.
    c.optimizer.locked_towers = ()
    c.optimizer.frozen_patterns = ()
    c.optimizer.lr_multipliers = {}  # per tower, e.g. {"image": 0.1}: its learning rate x 0.1

    c.data = ml_collections.ConfigDict()
    # "digits" (embedded default), "webdataset" (tar shards), "csv", or a tfds dataset name
    c.data.name = "digits"
    # webdataset: brace pattern of local tar shards, "/data/laion/{00000..00999}.tar" ("::"
    # joins several); eval_shards for data.eval_split (None: the train shards' first records)
    c.data.shards = config_dict.placeholder(str)
    c.data.eval_shards = config_dict.placeholder(str)
    # csv: a CSV/TSV of image paths (relative to the file) and captions, train and eval
    c.data.csv_path = config_dict.placeholder(str)
    c.data.eval_csv_path = config_dict.placeholder(str)
    c.data.csv_image_column = "filepath"  # csv: image path column (OpenCLIP's default)
    c.data.csv_caption_column = "title"  # csv: caption column (OpenCLIP's default)
    c.data.csv_separator = config_dict.placeholder(str)  # None: tab for .tsv, else comma
    c.data.data_dir = config_dict.placeholder(str)  # tfds data_dir (digits: its own cache)
    c.data.train_split = "train"  # split to train on (tfds slicing allowed)
    c.data.eval_split = "test"  # split for evaluation
    c.data.image_size = config_dict.placeholder(int)  # centre crop/resize side; None: as stored
    c.data.max_len = 16  # tokens per caption
    # image_text training crop: None keeps the float32 centre crop of digits/tfds runs;
    # "center" (resize + centre crop), "random_resized" (OpenCLIP, area (0.9, 1)) or
    # "inception" (big_vision, area (0.05, 1)). webdataset/csv default to "center".
    c.data.train_crop = config_dict.placeholder(str)
    c.data.train_crop_scale = config_dict.placeholder(tuple)  # area range; None: the crop's
    c.data.flip_probability = 0.0  # image_text: horizontal flip (off: captions say left/right)
    c.data.image_dtype = "uint8"  # with train_crop: host images "uint8" or "bfloat16"
    c.data.tokenizer = "digits"  # "digits", "clip" (CLIP BPE), or a .txt.gz, .model or .json path
    c.data.text_field = "captions/text"  # where records keep their caption(s)
    c.data.cache_in_memory = False  # decode the whole split once into memory (small data)
    c.data.num_threads = 2  # threads preparing batches ahead
    c.data.worker_count = 0  # grain worker processes (CPU-heavy augmentation)
    c.data.crop_scale = (0.08, 1.0)  # two_view: random-resized-crop area range
    # two_view: views 3..V's (SwAV's small crops') area range, at the same output size; None:
    # every view drawn like the first two
    c.data.small_crop_scale = config_dict.placeholder(tuple)
    c.data.jitter_strength = 1.0  # two_view: colour jitter strength
    c.data.blur_probability = 0.5  # two_view: probability of Gaussian blur

    c.eval = ml_collections.ConfigDict()
    c.eval.zero_shot = True  # image_text: zero-shot top-1 (and top-5) on data.eval_split
    c.eval.retrieval = True  # image_text: image<->text Recall@1/5/10 on the eval captions
    c.eval.geometry = True  # alignment, uniformity, modality gap, effective rank, cosines
    c.eval.knn = True  # 1-NN and weighted kNN top-1 (train features -> eval images)
    c.eval.knn_k = 20  # neighbours of the weighted kNN (DINO's 20)
    c.eval.knn_temperature = 0.07  # weighted kNN votes exp(cosine / T) (InstDisc's 0.07)
    c.eval.linear_probe = False  # logistic regression on frozen features (standalone: always)
    c.eval.probe_l2_grid = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # L2 strengths the probe sweeps
    c.eval.probe_val_fraction = 0.2  # share of the train features the sweep validates on
    c.eval.batch_size = 1024  # images per evaluation forward pass
    c.eval.max_examples = 10_000  # evaluate on at most this many held-out images
    # Zero-shot prompts; "{}" is the class name. Empty: the digits caption templates.
    c.eval.templates = ()
    c.eval.class_names = ()  # zero-shot class names in label order; empty: the dataset's
    # Zero-shot on other labelled datasets, each a dict {"name", "data_dir", "split",
    # "image_size", "max_examples", "templates", "class_names"} (contrastive.evaluate.
    # zero_shot_datasets; "clip_imagenet" names OpenAI's ImageNet class names / templates).
    c.eval.zero_shot_datasets = ()
    return c


def digits_schedule(c: ml_collections.ConfigDict) -> None:
    """The schedule every digits config shares: 600 steps of 256, a minute or so on a CPU."""
    c.total_steps = 600
    c.batch_size = 256
    c.eval_every = 200
    c.checkpoint_every = 200
    c.optimizer.learning_rate = 3e-3
    c.optimizer.warmup_steps = 50
    c.optimizer.b2 = 0.99
    c.data.cache_in_memory = True  # 1,343 tiny images: decode once
    c.eval.batch_size = 512


def shrink_for_smoke_run(c: ml_collections.ConfigDict) -> None:
    """`runlocal`: the same recipe with a few tiny steps, for a smoke run on a laptop CPU."""
    c.total_steps = 4
    c.batch_size = 16
    c.eval_every = 2
    c.checkpoint_every = 2
    c.optimizer.warmup_steps = 1
    c.eval.max_examples = 64
    c.eval.batch_size = 64
    c.data.num_threads = 1
