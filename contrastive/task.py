"""What is contrasted: an image with its caption (dual encoder) or two views of one image
(siamese encoder). A task builds its model and turns (params, batch) into the pair of
embedding batches (x, y) the loss compares, plus the loss's scale and bias.

Training and evaluation both start here: `make_task` from the config, `variable_shardings` for
the layout of the model's variables on a mesh (abstract: no parameter is materialised)."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from contrastive import models, parallel

IMAGE_TOWERS = {"vit": models.vit, "resnet": models.resnet}
VOCAB_MULTIPLE = 64
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# The top-level parameters of each DualEncoder tower (locked together by optimizer.locked_towers).
TOWER_PARAMS = {"image": ("image_tower", "image_head"), "text": ("text_tower", "text_head")}


def locked_params(towers) -> tuple:
    """The top-level parameter names of `towers` ("image", "text"); a one-line error else."""
    for tower in towers:
        if tower not in TOWER_PARAMS:
            raise ValueError(f"optimizer.locked_towers: {tower!r} is not one of "
                             f"{', '.join(TOWER_PARAMS)}")
    return tuple(name for tower in towers for name in TOWER_PARAMS[tower])


@dataclasses.dataclass(frozen=True)
class ImageTextTask:
    """CLIP / SigLIP: x = image embeddings, y = caption embeddings; scale = exp(log_scale)
    with log_scale clamped at log(max_scale) after every update (`constrain`), bias learnable
    (used by siglip only).

    With a captioner (CoCa, `caption_weight` > 0) `embed` also returns the per-example
    captioning cross-entropy of the batch's captions (teacher forcing, padding ignored) as an
    auxiliary loss, {"caption_loss": (B,)}; the train step adds aux_weights x its mean."""

    model: models.DualEncoder
    max_scale: float
    learn_temperature: bool = True
    locked: tuple = ()  # top-level params of locked towers (LiT): no gradient flows into them
    caption_weight: float = 0.0
    pad_id: int = 0  # the tokenizer's padding: no captioning loss on it

    @property
    def aux_weights(self) -> dict:
        """The weight of each auxiliary loss `embed` returns."""
        return {"caption_loss": self.caption_weight}

    def inputs(self, batch):
        return batch["image"], batch["tokens"]

    def embed(self, params, model_state, batch, rng=None, train: bool = True):
        """((x, y), new model_state); x, y: (B, d) unit rows, float32; with a captioner
        ((x, y, {"caption_loss": (B,) cross-entropies}), new model_state). `rng` feeds dropout;
        training updates batch-norm statistics (a ResNet image tower). A locked tower's params
        enter through stop_gradient: their tangents are symbolic zeros, so autodiff builds no
        backward pass (and keeps no activations) for the tower."""
        params = {k: jax.lax.stop_gradient(v) if k in self.locked else v
                  for k, v in params.items()}
        outputs, model_state = _apply(self.model, params, model_state, self.inputs(batch),
                                      train, rng)
        if self.model.captioner is None:
            return outputs, model_state
        x, y, logits = outputs
        ce = models.caption_cross_entropy(logits, batch["tokens"], self.pad_id)
        return (x, y, {"caption_loss": ce}), model_state

    def scale_and_bias(self, params):
        log_scale = params["log_scale"]
        if not self.learn_temperature:
            # No gradient reaches it, so AdamW (which never decays it) leaves it at its init.
            log_scale = jax.lax.stop_gradient(log_scale)
        return jnp.exp(log_scale), params["bias"]

    def constrain(self, params):
        """params after an optimiser update, with log_scale clamped at log(max_scale): CLIP's
        cap (beyond 100 the softmax is nearly one-hot and training unstable) as OpenCLIP
        applies it, to the parameter, so the gradient below the cap is intact and a scale at
        the cap can still come down (a min() in the loss would give it zero gradient)."""
        cap = jnp.log(jnp.float32(self.max_scale)).astype(params["log_scale"].dtype)
        return {**params, "log_scale": jnp.minimum(params["log_scale"], cap)}

    def embed_images(self, params, model_state, images):
        return self.model.apply({"params": params, **model_state}, images,
                                method=self.model.embed_images)

    def embed_texts(self, params, model_state, tokens):
        return self.model.apply({"params": params, **model_state}, tokens,
                                method=self.model.embed_texts)

    def image_tokens(self, params, model_state, images):
        """The captioner's input: the image tower's (B, T, width) patch tokens."""
        return self.model.apply({"params": params, **model_state}, images,
                                method=self.model.image_tokens)

    def caption_logits(self, params, model_state, image_tokens, tokens):
        """(B, L, vocab) next-token logits of `tokens` given the image tokens."""
        return self.model.apply({"params": params, **model_state}, image_tokens, tokens,
                                method=self.model.caption_logits)


@dataclasses.dataclass(frozen=True)
class TwoViewTask:
    """SimCLR: x, y = embeddings of two augmented views; NT-Xent is clip_loss with the fixed
    scale 1 / temperature (the loss's cross-view terms; see `configs/digits_simclr.py`).
    With V > 2 views (`model.num_views`) y is (B, V - 1, d), the other views, which only the
    multi-view losses (ntxent, supcon) accept. With model.num_prototypes = K > 0 (SwAV), x and
    y are the views' (B, K) scores against the model's prototypes."""

    model: models.SiameseEncoder
    temperature: float

    def inputs(self, batch):
        """The batch's views, "view1", "view2", ... (as many as it holds)."""
        views = [batch["view1"], batch["view2"]]
        while f"view{len(views) + 1}" in batch:
            views.append(batch[f"view{len(views) + 1}"])
        return tuple(views)

    def embed(self, params, model_state, batch, rng=None, train: bool = True):
        """((x, y), new model_state): training updates the batch-norm statistics."""
        return _apply(self.model, params, model_state, self.inputs(batch), train, rng)

    def scale_and_bias(self, params):
        del params
        return jnp.float32(1.0 / self.temperature), jnp.float32(0.0)

    def constrain(self, params):
        return params

    def embed_images(self, params, model_state, images):
        """Backbone features (before the head), as SimCLR evaluates."""
        return models.l2_normalize(
            self.model.apply({"params": params, **model_state}, images,
                             method=self.model.features)
        )


def _rngs(rng):
    return {} if rng is None else {"dropout": rng}


def _apply(model, params, model_state, inputs, train: bool, rng):
    """(model outputs, new model_state): in training, the model-state collections (batch-norm
    statistics) are mutable and come back updated."""
    variables = {"params": params, **model_state}
    if not train or not model_state:
        return model.apply(variables, *inputs, train=train, rngs=_rngs(rng)), model_state
    outputs, updates = model.apply(variables, *inputs, train=train, rngs=_rngs(rng),
                                   mutable=list(model_state))
    return outputs, {**model_state, **updates}


def _image_tower(config: ml_collections.ConfigDict, dtype):
    build = IMAGE_TOWERS[config.image_tower]
    return build(config.image_variant, dtype=dtype, remat=config.remat,
                 **dict(config.image_options))


def _captioner(m: ml_collections.ConfigDict, text_tower, dtype):
    """CoCa's decoder for model.caption_weight > 0 (None at 0: today's model): the fields of
    model.captioner, the text tower's vocabulary and length; ValueError for a non-ViT tower."""
    weight = m.get("caption_weight", 0.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ValueError(f"model.caption_weight must be a number >= 0, got {weight!r}")
    if not weight:
        return None
    if m.image_tower != "vit":
        raise ValueError(f"model.caption_weight > 0 (CoCa) needs image_tower 'vit' (its patch "
                         f"tokens), got {m.image_tower!r}")
    return models.make_captioner(dict(m.get("captioner", {})), text_tower.vocab_size,
                                 text_tower.max_len, dtype)


def make_task(config: ml_collections.ConfigDict, vocab_size: int | None = None,
              pad_id: int = 0):
    """The task and model for `config.model` (`vocab_size` and `pad_id` from the tokenizer,
    image_text)."""
    m = config.model
    dtype = DTYPES[m.dtype]
    if m.kind == "image_text":
        if not m.learn_temperature and 1.0 / m.temperature_init > m.max_scale:
            raise ValueError(f"a fixed temperature_init {m.temperature_init} is below "
                             f"1/max_scale = {1.0 / m.max_scale}: raise model.max_scale")
        text_options = {"max_len": config.data.max_len, "pad_id": pad_id, **dict(m.text_options)}
        if vocab_size is not None:  # the tokenizer's vocabulary wins over the config's
            # Rounded up so the table splits over any tensor-parallel size up to 64 (and
            # fills whole hardware tiles); the extra rows are never looked up.
            text_options["vocab_size"] = -(-vocab_size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
        text_tower = models.text_transformer(m.text_variant, dtype=dtype, remat=m.remat,
                                             **text_options)
        model = models.DualEncoder(
            image_tower=_image_tower(m, dtype),
            text_tower=text_tower,
            embed_dim=m.embed_dim,
            temperature_init=m.temperature_init,
            bias_init=m.bias_init,
            dtype=dtype,
            mlp_head_dim=m.head_hidden_dim if m.mlp_head else 0,
            head_depth=m.head_depth,
            head_bias=m.get("head_bias", False),
            pixel_mean=tuple(m.get("pixel_mean", (0.5,) * 3)),
            pixel_std=tuple(m.get("pixel_std", (0.5,) * 3)),
            captioner=_captioner(m, text_tower, dtype),
        )
        locked = locked_params(config.optimizer.get("locked_towers", ()))
        return ImageTextTask(model, m.max_scale, m.learn_temperature, locked,
                             float(m.get("caption_weight", 0.0)), pad_id)
    if config.optimizer.get("locked_towers"):
        raise ValueError("optimizer.locked_towers needs model.kind 'image_text' (two_view has "
                         "one tower: lock it with optimizer.frozen_patterns)")
    if m.kind == "two_view":
        if isinstance(m.num_views, bool) or not isinstance(m.num_views, int) or m.num_views < 2:
            raise ValueError(f"model.num_views must be an int >= 2; got {m.num_views!r}")
        head = models.MLPHead(m.head_hidden_dim, m.embed_dim, depth=m.head_depth, dtype=dtype)
        k = m.get("num_prototypes", 0)  # SwAV: the views' outputs are prototype scores
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"model.num_prototypes must be an int >= 0; got {k!r}")
        prototypes = models.Prototypes(k) if k else None
        return TwoViewTask(models.SiameseEncoder(_image_tower(m, dtype), head, prototypes),
                           m.temperature)
    raise ValueError(f"model.kind must be 'image_text' or 'two_view', got {m.kind!r}")


def model_inputs(task, example: dict, rows: int):
    """ShapeDtypeStructs of the model's inputs for `rows` examples shaped like `example`
    (one transformed record)."""
    spec = lambda v: v if isinstance(v, jax.ShapeDtypeStruct) else jnp.asarray(v)
    batch = {k: jax.ShapeDtypeStruct((rows, *spec(v).shape), spec(v).dtype)
             for k, v in example.items()}
    return task.inputs(batch)


def init_variables(task, key, inputs):
    """The model's boxed variables (params and e.g. batch-norm statistics) for `inputs`
    (ShapeDtypeStructs); trace it under `jax.eval_shape` for shapes alone."""
    return task.model.init(key, *[jnp.zeros(s.shape, s.dtype) for s in inputs])


def variable_shardings(task, inputs, mesh, rules) -> dict:
    """{"params": ..., and each model-state collection: ...} of NamedShardings, from the
    modules' logical axis names and the rules; shapes only, nothing is initialised."""
    with parallel.sharding_context(mesh, rules):
        # The key is made inside the trace: an eager op here would run on the mesh's devices,
        # which need not exist (a TPU topology compiled for on a CPU host).
        boxed = jax.eval_shape(lambda: init_variables(task, jax.random.PRNGKey(0), inputs))
        return dict(parallel.param_shardings(boxed, mesh, rules))


def abstract_variables(task, inputs, mesh, rules) -> dict:
    """The model's variables as sharded ShapeDtypeStructs (a restore target for orbax)."""
    shapes = jax.eval_shape(lambda: dict(nn.meta.unbox(init_variables(
        task, jax.random.PRNGKey(0), inputs))))
    return jax.tree.map(lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                                                 sharding=sharding),
                        shapes, variable_shardings(task, inputs, mesh, rules))
