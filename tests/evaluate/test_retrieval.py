"""Recall@K against scikit-learn's top_k_accuracy_score (one relevant item per query) and a
dense NumPy sort of the whole similarity matrix (several captions per image)."""
import numpy as np
import pytest
from sklearn.metrics import top_k_accuracy_score

from contrastive.evaluate import retrieval

KS = (1, 5, 10)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def noisy_pairs(rng, images, captions_per_image, d=16, noise=1.2):
    """Images (N, d) and their captions: each a noisy copy of its image."""
    x = rng.normal(size=(images, d))
    image_of_text = np.repeat(np.arange(images), captions_per_image)
    texts = x[image_of_text] + noise * rng.normal(size=(len(image_of_text), d))
    return x, texts, image_of_text


def test_one_caption_per_image_matches_scikit_learn():
    rng = np.random.default_rng(0)
    images, texts, image_of_text = noisy_pairs(rng, 60, 1)
    recalls = retrieval.image_text_recalls(images, texts, image_of_text, KS)
    similarity = unit(images) @ unit(texts).T
    everyone = np.arange(60)
    for k in KS:
        i2t = top_k_accuracy_score(everyone, similarity, k=k, labels=everyone)
        t2i = top_k_accuracy_score(everyone, similarity.T, k=k, labels=everyone)
        assert recalls[f"i2t_r@{k}"] == pytest.approx(i2t)
        assert recalls[f"t2i_r@{k}"] == pytest.approx(t2i)
    assert 0 < recalls["i2t_r@1"] < recalls["i2t_r@10"] < 1  # neither trivial nor hopeless


def dense_image_to_text(images, texts, image_of_text, k):
    """Sort every image's row of the full matrix; a hit if any of the first k is its caption."""
    order = np.argsort(-(unit(images) @ unit(texts).T), axis=1)[:, :k]
    return np.mean([np.any(image_of_text[row] == i) for i, row in enumerate(order)])


@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_several_captions_per_image_match_a_dense_sort(chunk):
    rng = np.random.default_rng(1)
    images, texts, image_of_text = noisy_pairs(rng, 40, 5, noise=2.0)
    permutation = rng.permutation(len(texts))  # captions in any order
    texts, image_of_text = texts[permutation], image_of_text[permutation]
    recalls = retrieval.image_text_recalls(images, texts, image_of_text, KS, chunk=chunk)
    similarity = unit(texts) @ unit(images).T
    for k in KS:
        assert recalls[f"i2t_r@{k}"] == pytest.approx(
            dense_image_to_text(images, texts, image_of_text, k))
        assert recalls[f"t2i_r@{k}"] == pytest.approx(
            top_k_accuracy_score(image_of_text, similarity, k=k, labels=np.arange(40)))
    assert 0 < recalls["t2i_r@1"] < 1


def test_ranks_by_hand():
    images = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # caption 0 -> image 0 (it is nearest image 1), captions 1, 2 -> image 1, caption 3 -> image 2
    texts = np.array([[0.1, 1.0], [0.0, 1.0], [1.0, 0.2], [-1.0, -0.1]])
    image_of_text = np.array([0, 1, 1, 2])
    # image 0 ranks texts 2, 0, ...: its caption 0 is second; image 1: text 1 first;
    # image 2: text 3 first.
    i2t = retrieval.best_relevant_ranks(images, texts, image_of_text, np.arange(4))
    np.testing.assert_array_equal(i2t, [1, 0, 0])
    # caption 0 prefers image 1 (rank 1 for image 0); caption 2 prefers image 0 (rank 1).
    t2i = retrieval.best_relevant_ranks(texts, images, np.arange(4), image_of_text)
    np.testing.assert_array_equal(t2i, [1, 0, 1, 0])
    assert retrieval.recall_at_k(t2i, (1, 2)) == {1: 0.5, 2: 1.0}


def test_shared_captions_are_kept_once_and_relevant_to_every_image_with_them():
    captions = [["a one", "one"], ["a two"], ["one", "a one", "a one"]]
    texts, image_index, text_index = retrieval.unique_captions(captions)
    assert texts == ["a one", "one", "a two"]
    np.testing.assert_array_equal(image_index, [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(text_index, [0, 1, 2, 1, 0])


def test_class_templates_shared_across_images_retrieve_by_class():
    """Digits' case: every image of a class has the class's captions, so a hit is a retrieved
    item of the right class; compared with scikit-learn on class scores."""
    rng = np.random.default_rng(2)
    classes, per_class, templates = 4, 6, 3
    prototypes = rng.normal(size=(classes, 8))
    labels = np.repeat(np.arange(classes), per_class)
    images = prototypes[labels] + 1.5 * rng.normal(size=(len(labels), 8))
    caption_vectors = {f"{t} {c}": prototypes[c] + rng.normal(size=8)
                       for c in range(classes) for t in range(templates)}
    texts, image_index, text_index = retrieval.unique_captions(
        [[f"{t} {c}" for t in range(templates)] for c in labels])
    text_features = np.stack([caption_vectors[t] for t in texts])
    recalls = retrieval.image_text_recalls(images, text_features, image_index, (1, 3),
                                           text_index=text_index)
    # image -> text at K = 1: is the best caption of the image's class?
    similarity = unit(images) @ unit(text_features).T
    text_class = np.array([int(t.split()[1]) for t in texts])
    assert recalls["i2t_r@1"] == pytest.approx(np.mean(text_class[similarity.argmax(1)] == labels))
    # text -> image at K = 3: is one of the 3 nearest images of the caption's class?
    nearest = np.argsort(-similarity.T, axis=1)[:, :3]
    expected = np.mean([np.any(labels[row] == c) for row, c in zip(nearest, text_class)])
    assert recalls["t2i_r@3"] == pytest.approx(expected)


def test_a_query_without_a_relevant_item_is_an_error():
    with pytest.raises(ValueError, match="no relevant gallery item"):
        retrieval.image_text_recalls(np.eye(3), np.eye(3), np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="outside"):
        retrieval.best_relevant_ranks(np.eye(2), np.eye(2), [0, 1], [0, 2])
