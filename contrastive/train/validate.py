"""The whole config checked before a run writes or reads anything: every mistake is one
`UserError` naming the field, what it holds and what it may hold.

`check(config)` returns the mesh (building it is part of the check: its sizes must cover the
devices) so the trainer does not build it twice.
"""
import os

import jax

from contrastive import parallel
from contrastive import task as task_lib
from contrastive.data import webdataset_source
from contrastive.errors import UserError
from contrastive.train import losses, observe
from contrastive.train import state as state_lib

# (field, kind, lowest allowed, highest allowed or None)
INT, FLOAT = "integer", "number"
RANGES = (
    ("total_steps", INT, 1, None), ("batch_size", INT, 1, None),
    ("num_microbatches", INT, 1, None), ("log_every", INT, 1, None),
    ("eval_every", INT, 0, None), ("checkpoint_every", INT, 0, None),
    ("keep_checkpoints", INT, 1, None),
    ("optimizer.warmup_steps", INT, 0, None), ("optimizer.weight_decay", FLOAT, 0, None),
    ("optimizer.end_learning_rate_fraction", FLOAT, 0, 1),
    ("optimizer.b1", FLOAT, 0, 1), ("optimizer.b2", FLOAT, 0, 1),
    ("optimizer.grad_clip_norm", FLOAT, 0, None),
    ("model.embed_dim", INT, 1, None), ("model.num_views", INT, 2, None), ("model.max_scale", FLOAT, 1, None),
    ("model.num_prototypes", INT, 0, None),
    ("model.caption_weight", FLOAT, 0, None),
    ("eval.batch_size", INT, 1, None), ("eval.max_examples", INT, 1, None),
    ("data.max_len", INT, 1, None), ("data.flip_probability", FLOAT, 0, 1),
    ("mixup.alpha", FLOAT, 0, None), ("mixup.weight", FLOAT, 0, None),
)
POSITIVE = ("optimizer.learning_rate", "optimizer.eps", "model.temperature_init",
            "model.temperature")
OPTIONAL_POSITIVE_INTS = ("loss_block_size", "data.image_size")
CHOICES = {"model.kind": ("image_text", "two_view"), "model.image_tower": tuple(task_lib.IMAGE_TOWERS),
           "model.dtype": tuple(task_lib.DTYPES)}


def _get(config, path: str):
    value = config
    for key in path.split("."):
        value = value[key]
    return value


def _is_number(value, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind == INT else isinstance(value, (int, float))


def check_fields(config) -> None:
    """Types, ranges and choices of the numeric and named fields (no devices, no files)."""
    for path, kind, low, high in RANGES:
        value = _get(config, path)
        if not _is_number(value, kind) or value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            article = "an" if kind == INT else "a"
            raise UserError(f"config.{path}={value!r}: must be {article} {kind} {span}")
    for path in POSITIVE:
        value = _get(config, path)
        if not _is_number(value, FLOAT) or value <= 0:
            raise UserError(f"config.{path}={value!r}: must be a number > 0")
    for path in OPTIONAL_POSITIVE_INTS:
        value = _get(config, path)
        if value is not None and (not _is_number(value, INT) or value < 1):
            raise UserError(f"config.{path}={value!r}: must be None or an integer >= 1")
    for path, allowed in CHOICES.items():
        if _get(config, path) not in allowed:
            raise UserError(f"config.{path}={_get(config, path)!r}: must be one of "
                            f"{', '.join(map(repr, allowed))}")
    small = config.data.small_crop_scale
    if small is not None and not (
            isinstance(small, (tuple, list)) and len(small) == 2
            and all(_is_number(v, FLOAT) for v in small) and 0 < small[0] <= small[1] <= 1):
        raise UserError(f"config.data.small_crop_scale={small!r}: must be None or an area "
                        "range (low, high) with 0 < low <= high <= 1")
    m = config.model
    if small is not None and (m.kind != "two_view" or m.num_views < 3):
        raise UserError(f"config.data.small_crop_scale={small!r} draws views 3..V: it needs "
                        f"model.kind 'two_view' and model.num_views >= 3 (got {m.kind!r}, "
                        f"{m.num_views})")
    if m.kind == "image_text" and not m.learn_temperature and 1 / m.temperature_init > m.max_scale:
        raise UserError(f"config.model.temperature_init={m.temperature_init} is fixed "
                        f"(learn_temperature=False) below 1/max_scale = {1 / m.max_scale}: "
                        "raise model.max_scale")


def check_data_paths(config) -> None:
    """The files the data section names exist (nothing is opened or read)."""
    data = config.data
    if data.name == "webdataset":
        for field in ("shards", "eval_shards"):
            if data[field]:
                paths = webdataset_source.expand_braces(os.path.expanduser(data[field]))
                missing = [p for p in paths if not os.path.exists(p)]
                if missing:
                    raise UserError(f"config.data.{field}: {len(missing)} of {len(paths)} shards "
                                    f"do not exist, the first {missing[0]}")
        if not data.shards:
            raise UserError("config.data.shards: data.name='webdataset' needs a shard pattern")
    elif data.name == "csv":
        if not data.csv_path:
            raise UserError("config.data.csv_path: data.name='csv' needs a CSV/TSV file")
        for field in ("csv_path", "eval_csv_path"):
            if data[field] and not os.path.isfile(os.path.expanduser(data[field])):
                raise UserError(f"config.data.{field}: no such file {data[field]}")
    elif data.name != "digits" and data.data_dir and not os.path.isdir(
            os.path.expanduser(data.data_dir)):
        raise UserError(f"config.data.data_dir: no such directory {data.data_dir} (the tfds "
                        f"data_dir holding {data.name})")
    setting = data.tokenizer
    if config.model.kind == "image_text" and setting not in ("digits", "clip") and not os.path.isfile(os.path.expanduser(setting)):
        raise UserError(f"config.data.tokenizer: no such file {setting} (use 'digits', 'clip', "
                        "or the path of a CLIP .txt.gz vocab, a SentencePiece .model or a "
                        "Hugging Face tokenizer .json)")


def _check_loss_inputs(config, record: losses.Loss) -> None:
    """The model gives the loss what its record reads: prototype scores exactly when the model
    has prototypes (a two_view model with model.num_prototypes > 0)."""
    m = config.model
    scores = m.kind == "two_view" and m.num_prototypes > 0
    reads = record.inputs
    if reads == "prototype_scores" and not scores:
        raise UserError(f"config.loss={config.loss!r} reads prototype scores: it needs "
                        f"model.kind 'two_view' and model.num_prototypes > 0 (got "
                        f"{m.kind!r}, {m.num_prototypes})")
    if m.num_prototypes > 0 and reads != "prototype_scores":
        readers = ", ".join(n for n, r in losses.LOSSES.items() if r.inputs == "prototype_scores")
        raise UserError(f"config.model.num_prototypes={m.num_prototypes} gives the loss "
                        f"prototype scores, which config.loss={config.loss!r} does not read "
                        f"({readers} do)")


def check(config):
    """Every check that needs no data: fields, data paths, mesh, batch split, loss. Returns
    the mesh."""
    check_fields(config)
    check_data_paths(config)
    try:
        mesh = parallel.make_mesh(dict(config.mesh))
    except ValueError as error:
        raise UserError(f"config.mesh={dict(config.mesh)}: {error}") from None
    shards = parallel.batch_shards(mesh)
    if config.batch_size % (config.num_microbatches * shards):
        raise UserError(
            f"config.batch_size={config.batch_size} must divide into num_microbatches "
            f"{config.num_microbatches} x {shards} batch shards of mesh {dict(mesh.shape)} "
            f"({jax.device_count()} devices)")
    try:
        losses.bind(config.loss, mesh, config.loss_block_size, config.loss_options)
    except ValueError as error:
        field = "loss_options" if "option" in str(error) else "loss"
        raise UserError(f"config.{field}: {error}") from None
    record = losses.get(config.loss)
    if config.model.kind == "two_view" and config.model.num_views > 2 and not record.multi_view:
        multi = ", ".join(name for name, r in losses.LOSSES.items() if r.multi_view)
        raise UserError(f"config.model.num_views={config.model.num_views} needs a multi-view "
                        f"loss ({multi}); config.loss={config.loss!r} compares two views")
    if config.mixup.alpha and (record.labels or record.state is not losses.NO_STATE
                               or record.inputs != "embeddings"):
        raise UserError(f"config.mixup.alpha={config.mixup.alpha}: mixup pairs each row with "
                        f"the next one's targets and mixes embeddings, which "
                        f"config.loss={config.loss!r} cannot follow (it reads class labels, "
                        "keeps per-example state or compares other scores)")
    _check_loss_inputs(config, record)
    try:
        observe.parse_profile_steps(config.profile_steps)
        task_lib.make_task(config)  # model options, locked towers, temperatures
        state_lib.make_optimizer(config.optimizer, config.total_steps)  # frozen patterns, rates
    except ValueError as error:
        raise UserError(str(error) if str(error).startswith("config.")
                        else f"config: {error}") from None
    pretrained = config.model.get("pretrained")
    if pretrained and not os.path.exists(os.path.expanduser(pretrained)):
        raise UserError(f"config.model.pretrained: no such file or run {pretrained}")
    return mesh
