"""The evaluation a run performs periodically, from its config: zero-shot top-1 for image-text
models, nearest-neighbour top-1 for two-view (SimCLR) models."""
from collections.abc import Callable

import ml_collections

from contrastive.data import digits
from contrastive.evaluate import embed as embed_lib
from contrastive.evaluate import knn, zero_shot
from contrastive.train import data as data_lib


def _class_prompts(config, num_classes: int):
    if config.eval.templates:
        names = _class_names(config)
        return zero_shot.prompts_from_templates(config.eval.templates, names)
    if config.data.name != "digits":
        raise ValueError("zero-shot on a tfds dataset needs config.eval.templates")
    return [digits.captions_for(label) for label in range(num_classes)]


def _class_names(config):
    if config.data.name == "digits":
        return list(digits.DIGIT_NAMES)
    from contrastive.data import tfds_source  # pylint: disable=import-outside-toplevel

    builder = tfds_source.load_builder(config.data.name, config.data.data_dir)
    return [n.replace("_", " ") for n in builder.info.features["label"].names]


def make_evaluator(config: ml_collections.ConfigDict, task, mesh, rules,
                   tokenizer=None) -> Callable | None:
    """evaluate(state) -> {metric name: value}, or None when the config asks for nothing."""
    images, labels = data_lib.load_labelled_images(
        config, config.data.eval_split, config.eval.max_examples
    )
    embed_images = embed_lib.make_batch_embedder(
        task.embed_images, mesh, rules, config.eval.batch_size
    )
    if config.model.kind == "image_text" and config.eval.zero_shot:
        embed_texts = embed_lib.make_batch_embedder(
            task.embed_texts, mesh, rules, config.eval.batch_size
        )
        prompts = _class_prompts(config, int(labels.max()) + 1)

        def evaluate_zero_shot(state):
            weights = zero_shot.class_weights(
                lambda tokens: embed_texts(state.params, state.model_state, tokens),
                tokenizer, prompts,
            )
            image_embeddings = embed_images(state.params, state.model_state, images)
            return {"zero_shot_top1": zero_shot.zero_shot_top1(image_embeddings, labels, weights)}

        return evaluate_zero_shot
    if config.model.kind == "two_view" and config.eval.knn:
        ref_images, ref_labels = data_lib.load_labelled_images(
            config, config.data.train_split, config.eval.max_examples
        )

        def evaluate_knn(state):
            reference = embed_images(state.params, state.model_state, ref_images)
            queries = embed_images(state.params, state.model_state, images)
            return {"knn_top1": knn.knn_top1(reference, ref_labels, queries, labels)}

        return evaluate_knn
    return None
