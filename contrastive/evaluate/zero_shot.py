"""Zero-shot classification with a prompt ensemble (CLIP, Radford et al. 2021, sec. 3.1.4).

Class c's weight is w_c = normalize(mean_t normalize(text(template_t(c)))): the mean of its
prompts' unit embeddings, renormalised. An image with unit embedding v is assigned
argmax_c <v, w_c>, i.e. the class of highest cosine similarity.
"""
from collections.abc import Callable, Sequence

import numpy as np


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest score is at the true label; scores (N, C), labels (N,)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"scores (N, C) and labels (N,) expected, got {scores.shape}, "
                         f"{labels.shape}")
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_weights(embed_texts: Callable[[np.ndarray], np.ndarray], tokenizer,
                  class_prompts: Sequence[Sequence[str]]) -> np.ndarray:
    """(C, d) unit class weights from each class's prompts (every class the same number)."""
    counts = {len(prompts) for prompts in class_prompts}
    if len(counts) != 1:
        raise ValueError(f"every class needs the same number of prompts, got {sorted(counts)}")
    tokens = tokenizer.encode_batch([p for prompts in class_prompts for p in prompts])
    embeddings = _unit_rows(np.asarray(embed_texts(tokens), np.float64))
    per_class = embeddings.reshape(len(class_prompts), counts.pop(), -1)
    return _unit_rows(per_class.mean(axis=1))


def zero_shot_top1(image_embeddings: np.ndarray, labels: np.ndarray,
                   weights: np.ndarray) -> float:
    """Top-1 accuracy of classifying images (N, d) by cosine similarity to weights (C, d)."""
    scores = _unit_rows(np.asarray(image_embeddings, np.float64)) @ weights.T
    return top1_accuracy(scores, labels)


def prompts_from_templates(templates: Sequence[str], class_names: Sequence[str]):
    """[[template.format(name) for template in templates] for name in class_names]."""
    return [[t.format(name) for t in templates] for name in class_names]
