"""The evaluation a run performs periodically (and `python -m contrastive.evaluate` on a
checkpoint), from config.eval:

  image_text  zero-shot top-1/top-5 (prompt ensembles), image<->text Recall@1/5/10 on the eval
              split's captions, geometry of (image, first caption) pairs; with a captioner
              (CoCa) greedy captions scored against the eval captions (`captioning`)
  two_view    geometry of two augmented views of each eval image (fixed once)
  both        kNN (1-NN and weighted) and a linear probe on image features, train -> eval split
"""
from collections.abc import Callable
import json
import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from contrastive.data import digits
from contrastive.data import from_config as data_lib
from contrastive.evaluate import embed as embed_lib
from contrastive.evaluate import captioning, geometry, knn, linear_probe, retrieval, zero_shot
from contrastive.evaluate import zero_shot_datasets

log = logging.getLogger(__name__)


def class_prompts(config, labels: np.ndarray) -> list[list[str]]:
    """Each class's prompts; ValueError naming the eval classes that have none."""
    if config.eval.templates:
        names = list(config.eval.class_names) or data_lib.dataset_class_names(config)
        prompts = zero_shot.prompts_from_templates(config.eval.templates, names)
    elif config.data.name == "digits" and not config.eval.class_names:
        prompts = [digits.captions_for(label) for label in range(len(digits.DIGIT_NAMES))]
    else:
        raise ValueError("zero-shot needs config.eval.templates (and class names from the "
                         "dataset or config.eval.class_names)")
    if len(prompts) <= int(np.max(labels)) or int(np.min(labels)) < 0:
        zero_shot.check_prompt_classes(labels, len(prompts), data_lib.dataset_class_names(config))
    return prompts


def _zero_shot_step(config, labels, embed_texts, tokenizer):
    prompts = class_prompts(config, labels)

    def step(state, features):
        weights = zero_shot.class_weights(
            lambda tokens: embed_texts(state.params, state.model_state, tokens), tokenizer, prompts)
        scores = zero_shot.zero_shot_scores(features, weights)
        out = {"zero_shot_top1": zero_shot.top1_accuracy(scores, labels)}
        if len(prompts) > 5:
            out["zero_shot_top5"] = zero_shot.topk_accuracy(scores, labels, 5)
        return out

    return step


def _captions_step(config, captions, embed_texts, tokenizer):
    """Retrieval over the distinct captions, geometry of each image with its first caption."""
    texts, image_index, text_index = retrieval.unique_captions(captions)
    tokens = tokenizer.encode_batch(texts)
    # pairs come image by image, so each image's first pair is at its searchsorted position
    first_caption = text_index[np.searchsorted(image_index, np.arange(len(captions)))]

    def step(state, features):
        text_features = embed_texts(state.params, state.model_state, tokens)
        out = {}
        if config.eval.retrieval:
            out.update(retrieval.image_text_recalls(features, text_features, image_index,
                                                    text_index=text_index))
        if config.eval.geometry:
            out.update(geometry.geometry_metrics(features, text_features[first_caption]))
        return out

    return step


def _captioning_step(config, task, images, captions, tokenizer, batched, examples_dir,
                     num_examples: int = 16):
    """Greedy captions of the eval images scored against their captions; the first
    `num_examples` (generated and reference texts) go to examples_dir/captions.json."""
    pad_id, eos_id = tokenizer.pad_id, captioning.end_id(tokenizer)
    generate = batched(captioning.caption_generator(task, config.data.max_len, pad_id, eos_id,
                                                    tokenizer.vocab_size))
    references = [tokenizer.encode_batch(texts) for texts in captions]

    def step(state, features):
        del features
        generated = generate(state.params, state.model_state, images)
        if examples_dir and jax.process_index() == 0:
            examples = [{"generated": tokenizer.decode(row), "references": list(texts)}
                        for row, texts in zip(generated[:num_examples], captions)]
            step_number = getattr(state, "step", None)
            record = {"step": None if step_number is None else int(jax.device_get(step_number)),
                      "examples": examples}
            with open(os.path.join(examples_dir, "captions.json"), "w") as f:
                json.dump(record, f, indent=1)
        return captioning.caption_metrics(generated, references, pad_id)

    return step


def _views_step(task, views, batched):
    """Geometry of the two views' embeddings (the space the loss compares)."""
    def both_views(params, model_state, pair):
        (x, y), _ = task.embed(params, model_state, {"view1": pair[:, 0], "view2": pair[:, 1]},
                               train=False)
        return jnp.concatenate([x, y], axis=1)  # one array: the batch embedder's output

    embed_views = batched(both_views)

    def step(state, features):
        del features
        x, y = np.split(embed_views(state.params, state.model_state, views), 2, axis=1)
        return geometry.geometry_metrics(x, y)

    return step


def _train_features_step(config, labels, embed_images):
    """kNN and the linear probe: train-split features as references / training data."""
    e = config.eval
    reference = data_lib.load_eval_split(config, config.data.train_split, e.max_examples)
    ref_images, ref_labels = reference["images"], reference["labels"]

    def step(state, features):
        train_features = embed_images(state.params, state.model_state, ref_images)
        out = {}
        if e.knn:
            out["knn_top1"] = knn.knn_top1(train_features, ref_labels, features, labels)
            out["knn_weighted_top1"] = knn.knn_top1(
                train_features, ref_labels, features, labels,
                k=min(e.knn_k, len(ref_labels)), temperature=e.knn_temperature)
        if e.linear_probe:
            out.update(linear_probe.linear_probe(
                train_features, ref_labels, features, labels, l2_grid=tuple(e.probe_l2_grid),
                val_fraction=e.probe_val_fraction, seed=config.seed))
        return out

    return step


def make_evaluator(config: ml_collections.ConfigDict, task, mesh, rules,
                   tokenizer=None, examples_dir: str | None = None) -> Callable | None:
    """evaluate(state) -> {metric name: value}, or None when the config asks for nothing.
    `state` needs only .params and .model_state. examples_dir: where a captioning model's
    generated examples are written (captions.json; None: nowhere)."""
    e = config.eval
    image_text = config.model.kind == "image_text"
    evaluation = data_lib.load_eval_split(config, config.data.eval_split, e.max_examples,
                                 two_views=e.geometry and not image_text)
    images, labels = evaluation["images"], evaluation["labels"]
    # Web-scale image-text records (webdataset, csv) carry no class: label -1 throughout.
    unlabelled = bool(np.all(labels < 0))
    if unlabelled and (e.zero_shot or e.knn or e.linear_probe):
        log.warning("The eval split has no class labels: no zero-shot, kNN or linear probe "
                    "(retrieval and geometry still run).")
    batched = lambda fn: embed_lib.make_batch_embedder(fn, mesh, rules, e.batch_size)
    embed_images = batched(task.embed_images)
    steps = []  # each: (state, image features of the eval split) -> {name: value}
    if image_text:
        embed_texts = batched(task.embed_texts)
        if e.zero_shot and not unlabelled:
            steps.append(_zero_shot_step(config, labels, embed_texts, tokenizer))
        steps += zero_shot_datasets.make_steps(config, embed_images, embed_texts, tokenizer,
                                               class_prompts)
        if (e.retrieval or e.geometry) and evaluation["captions"] is None:
            log.warning("The eval split has no captions under %r: no retrieval or geometry.",
                        config.data.text_field)
        elif e.retrieval or e.geometry:
            steps.append(_captions_step(config, evaluation["captions"], embed_texts, tokenizer))
        if task.model.captioner is not None:
            if evaluation["captions"] is None:
                log.warning("The eval split has no captions under %r: no caption metrics.",
                            config.data.text_field)
            else:
                steps.append(_captioning_step(config, task, images, evaluation["captions"],
                                              tokenizer, batched, examples_dir))
    elif e.geometry:
        steps.append(_views_step(task, evaluation["views"], batched))
    if (e.knn or e.linear_probe) and not unlabelled:
        steps.append(_train_features_step(config, labels, embed_images))
    if not steps:
        return None

    def evaluate(state) -> dict[str, float]:
        features = embed_images(state.params, state.model_state, images)
        results = {}
        for step in steps:
            results.update(step(state, features))
        return results

    return evaluate
