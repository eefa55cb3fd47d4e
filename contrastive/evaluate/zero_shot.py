"""Zero-shot classification with a prompt ensemble (CLIP, Radford et al. 2021, sec. 3.1.4).

Class c's weight is w_c = normalize(mean_t normalize(text(template_t(c)))): the mean of its
prompts' unit embeddings, renormalised. An image with unit embedding v is assigned
argmax_c <v, w_c>, i.e. the class of highest cosine similarity.
"""
from collections.abc import Callable, Sequence

import numpy as np

from contrastive.evaluate.embed import unit_rows


def _checked(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"scores (N, C) and labels (N,) expected, got {scores.shape}, "
                         f"{labels.shape}")
    return scores, labels


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest score is at the true label; scores (N, C), labels (N,)."""
    scores, labels = _checked(scores, labels)
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true label scores above all but at most k - 1 others (ties in
    the row's favour); k = 1 is top-1 up to ties."""
    scores, labels = _checked(scores, labels)
    true = scores[np.arange(len(labels)), labels]
    return float(np.mean(np.sum(scores > true[:, None], axis=1) < k))


def check_prompt_classes(labels: np.ndarray, num_prompt_classes: int,
                         label_names=None) -> None:
    """ValueError naming the classes of `labels` that have no prompts (label >= C); label_names
    (the dataset's names, in label order) put names to the missing labels."""
    missing = sorted({int(l) for l in np.asarray(labels) if not 0 <= l < num_prompt_classes})
    if missing:
        names = list(label_names or [])
        shown = [f"{l} ({names[l]!r})" if l < len(names) else str(l) for l in missing[:20]]
        raise ValueError(
            f"the evaluation set has {len(missing)} classes missing from the prompts (which "
            f"cover {num_prompt_classes} classes): {', '.join(shown)}"
            f"{' ...' if len(missing) > 20 else ''}"
        )


def class_weights(embed_texts: Callable[[np.ndarray], np.ndarray], tokenizer,
                  class_prompts: Sequence[Sequence[str]]) -> np.ndarray:
    """(C, d) unit class weights from each class's prompts (every class the same number)."""
    counts = {len(prompts) for prompts in class_prompts}
    if len(counts) != 1:
        raise ValueError(f"every class needs the same number of prompts, got {sorted(counts)}")
    tokens = tokenizer.encode_batch([p for prompts in class_prompts for p in prompts])
    embeddings = unit_rows(np.asarray(embed_texts(tokens), np.float64))
    per_class = embeddings.reshape(len(class_prompts), counts.pop(), -1)
    return unit_rows(per_class.mean(axis=1))


def zero_shot_scores(image_embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, C) cosine similarities of images (N, d) to unit class weights (C, d)."""
    return unit_rows(np.asarray(image_embeddings, np.float64)) @ np.asarray(weights).T


def zero_shot_top1(image_embeddings: np.ndarray, labels: np.ndarray,
                   weights: np.ndarray) -> float:
    """Top-1 accuracy of classifying images (N, d) by cosine similarity to weights (C, d)."""
    check_prompt_classes(labels, len(weights))
    return top1_accuracy(zero_shot_scores(image_embeddings, weights), labels)


def prompts_from_templates(templates: Sequence[str], class_names: Sequence[str]):
    """[[template.format(name) for template in templates] for name in class_names]."""
    return [[t.format(name) for t in templates] for name in class_names]
