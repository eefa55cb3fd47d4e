"""Zero-shot classification (and 1-NN) on hand-made embeddings and against scikit-learn."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, top_k_accuracy_score

from contrastive.evaluate import knn, zero_shot


def test_top1_accuracy_matches_scikit_learn():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 7))
    labels = rng.integers(0, 7, size=50)
    expected = accuracy_score(labels, scores.argmax(axis=1))
    assert zero_shot.top1_accuracy(scores, labels) == pytest.approx(expected)
    assert 0 < expected < 1  # a case where right and wrong both occur


def test_top1_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="scores"):
        zero_shot.top1_accuracy(np.zeros((3, 2)), np.zeros(4))


class LookupTokenizer:
    """Encodes a prompt as its index in a fixed list (the 'text tower' looks it up)."""

    def __init__(self, prompts):
        self.index = {p: i for i, p in enumerate(prompts)}

    def encode_batch(self, texts):
        return np.array([[self.index[t]] for t in texts])


def test_prompt_ensemble_averages_and_renormalises_each_class():
    prompts = [["a 0", "b 0"], ["a 1", "b 1"]]
    table = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, -1.0], [0.0, -3.0]])  # one row per prompt
    tokenizer = LookupTokenizer([p for ps in prompts for p in ps])
    weights = zero_shot.class_weights(lambda tokens: table[tokens[:, 0]], tokenizer, prompts)
    # class 0: mean of (1, 0) and (0, 1) after normalising -> (1, 1) / sqrt 2
    np.testing.assert_allclose(weights[0], [2**-0.5, 2**-0.5])
    np.testing.assert_allclose(weights[1], [0.0, -1.0])
    images = np.array([[3.0, 2.9], [0.1, -5.0], [1.0, 1.2]])
    assert zero_shot.zero_shot_top1(images, np.array([0, 1, 1]), weights) == pytest.approx(2 / 3)


def test_classes_need_the_same_number_of_prompts():
    with pytest.raises(ValueError, match="same number of prompts"):
        zero_shot.class_weights(lambda t: t, LookupTokenizer(["a", "b", "c"]), [["a"], ["b", "c"]])


def test_prompts_from_templates():
    assert zero_shot.prompts_from_templates(["a {}", "the {}."], ["cat", "dog"]) == [
        ["a cat", "the cat."], ["a dog", "the dog."]]


def test_knn_takes_the_nearest_label_by_cosine():
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [10.0, 9.0]])
    reference_labels = np.array([0, 1, 2])
    queries = np.array([[5.0, 0.1], [0.2, 3.0], [1.0, 1.0]])
    assert knn.knn_top1(reference, reference_labels, queries, np.array([0, 1, 2])) == 1.0
    # k = 3 majority: every query sees all three labels once; the nearest breaks the tie.
    assert knn.knn_top1(reference, reference_labels, queries, np.array([0, 1, 2]), k=3) == 1.0


@pytest.mark.parametrize("k", [1, 2, 5])
def test_topk_accuracy_matches_scikit_learn(k):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(80, 10))
    labels = rng.integers(0, 10, size=80)
    expected = top_k_accuracy_score(labels, scores, k=k, labels=np.arange(10))
    assert zero_shot.topk_accuracy(scores, labels, k) == pytest.approx(expected)
    assert 0 < expected < 1


def test_zero_shot_scores_are_cosines_to_the_class_weights():
    rng = np.random.default_rng(2)
    images, weights = rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    expected = [[a @ w / np.linalg.norm(a) for w in weights] for a in images]
    np.testing.assert_allclose(zero_shot.zero_shot_scores(images, weights), expected, rtol=1e-12)


def test_classes_missing_from_the_prompts_are_named():
    names = ["zero", "one", "two", "three"]
    with pytest.raises(ValueError, match=r"2 classes missing .* 2 \('two'\), 3 \('three'\)"):
        zero_shot.check_prompt_classes(np.array([0, 3, 1, 2, 3]), 2, names)
    with pytest.raises(ValueError, match="missing from the prompts"):
        zero_shot.zero_shot_top1(np.ones((2, 3)), np.array([0, 1]), np.ones((1, 3)))
    zero_shot.check_prompt_classes(np.array([0, 1, 1]), 2)  # every class covered: no error
