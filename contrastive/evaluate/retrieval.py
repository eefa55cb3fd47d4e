"""Image <-> text retrieval: Recall@K both ways, with several captions per image.

Recall@K of a direction is the fraction of queries with at least one relevant gallery item among
their K most cosine-similar ones (CLIP, Radford et al. 2021, table 13; the Karpathy-split
protocol: an image query is answered by any of its captions, a caption query by its image).

A query's hit at K is decided by its rank r = #{gallery items scored strictly above its best
relevant item}: the best relevant item is in the top K exactly when r < K (ties resolved in the
query's favour). The scores are computed a block of queries at a time, so memory is
O(chunk x gallery), never queries x gallery.
"""
from collections.abc import Sequence

import numpy as np

from contrastive.evaluate.embed import unit_rows

_CHUNK = 1024


def best_relevant_ranks(queries, gallery, query_index, gallery_index,
                        chunk: int = _CHUNK) -> np.ndarray:
    """(Q,) rank of each query's best relevant gallery item (0 = retrieved first).

    Relevance is the list of pairs (query_index[p], gallery_index[p]); every query needs one.
    """
    queries, gallery = unit_rows(queries), unit_rows(gallery)
    query_index = np.asarray(query_index, np.int64)
    gallery_index = np.asarray(gallery_index, np.int64)
    if query_index.shape != gallery_index.shape or query_index.ndim != 1:
        raise ValueError("query_index and gallery_index must be 1-D arrays of equal length")
    if query_index.size and (query_index.min() < 0 or query_index.max() >= len(queries)
                             or gallery_index.min() < 0 or gallery_index.max() >= len(gallery)):
        raise ValueError("a relevant pair points outside the queries or the gallery")
    missing = np.setdiff1d(np.arange(len(queries)), query_index)
    if missing.size:
        raise ValueError(f"{missing.size} queries have no relevant gallery item, e.g. "
                         f"{missing[:5].tolist()}")
    order = np.argsort(query_index, kind="stable")  # pairs grouped by query, for slicing
    query_index, gallery_index = query_index[order], gallery_index[order]
    starts = np.append(np.arange(0, len(queries), chunk), len(queries))
    bounds = np.searchsorted(query_index, starts)
    ranks = np.empty(len(queries), np.int64)
    for block, start in enumerate(range(0, len(queries), chunk)):
        scores = queries[start : start + chunk] @ gallery.T
        lo, hi = bounds[block], bounds[block + 1]
        rows = query_index[lo:hi] - start
        best = np.full(len(scores), -np.inf)
        np.maximum.at(best, rows, scores[rows, gallery_index[lo:hi]])
        ranks[start : start + len(scores)] = np.sum(scores > best[:, None], axis=1)
    return ranks


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """{K: fraction of ranks below K}."""
    return {k: float(np.mean(np.asarray(ranks) < k)) for k in ks}


def image_text_recalls(images, texts, image_of_text, ks: Sequence[int] = (1, 5, 10),
                       chunk: int = _CHUNK, text_index=None) -> dict[str, float]:
    """Recall@K for image->text and text->image, keys "i2t_r@K" and "t2i_r@K".

    images (N, d), texts (T, d). Relevant pairs are (image_of_text[p], text_index[p]);
    text_index defaults to 0..T-1, i.e. text j is a caption of image image_of_text[j] (several
    captions per image: repeat the image's index). Pass text_index to let one text belong to
    several images (e.g. identical captions kept once).
    """
    image_of_text = np.asarray(image_of_text, np.int64)
    text_index = np.arange(len(image_of_text)) if text_index is None else text_index
    i2t = best_relevant_ranks(images, texts, image_of_text, text_index, chunk)
    t2i = best_relevant_ranks(texts, images, text_index, image_of_text, chunk)
    out = {f"i2t_r@{k}": v for k, v in recall_at_k(i2t, ks).items()}
    out.update({f"t2i_r@{k}": v for k, v in recall_at_k(t2i, ks).items()})
    return out


def unique_captions(captions_per_image: Sequence[Sequence[str]]):
    """(texts, image_index, text_index): identical captions kept once, as relevant pairs.

    Identical strings embed identically, so keeping each once avoids ties between copies; a
    caption shared by several images (digits' class templates) is relevant to all of them.
    """
    texts, position, image_index, text_index = [], {}, [], []
    for image, captions in enumerate(captions_per_image):
        for caption in dict.fromkeys(captions):  # each distinct caption of the image once
            if caption not in position:
                position[caption] = len(texts)
                texts.append(caption)
            image_index.append(image)
            text_index.append(position[caption])
    return texts, np.array(image_index, np.int64), np.array(text_index, np.int64)
