"""Zero-shot on other labelled datasets (config.eval.zero_shot_datasets): each entry reads its
own tfds data_dir and split, prompts from its templates (or a shipped prompt set) and class
names (or the dataset's); scores checked against scikit-learn on the same embeddings."""
import types
import zlib

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, top_k_accuracy_score

from configs import digits_clip
from contrastive.data import from_config as data_lib
from contrastive.evaluate import suite, zero_shot_datasets
from tests.data import tiny_tfds

D = 16
TABLE = np.random.default_rng(0).standard_normal((997, D))
PROJECTION = np.random.default_rng(1).standard_normal((32 * 32 * 3, D))


class HashTokenizer:
    def encode_batch(self, texts):
        return np.array([[zlib.crc32(t.encode()) % len(TABLE)] for t in texts])


def embed_texts(params, model_state, tokens):
    return TABLE[tokens[:, 0]]


def embed_images(params, model_state, images):
    return np.asarray(images, np.float64).reshape(len(images), -1) @ PROJECTION


def _oracle(config, entry, names, templates):
    c = zero_shot_datasets.dataset_config(config, entry)
    data = data_lib.load_eval_split(c, c.data.eval_split, 1000)
    w = np.stack([np.mean([v / np.linalg.norm(v) for v in embed_texts(
        None, None, HashTokenizer().encode_batch([t.format(n) for t in templates]))], axis=0)
        for n in names])
    x = embed_images(None, None, data["images"])
    scores = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
        w / np.linalg.norm(w, axis=1, keepdims=True)).T
    return data["labels"], scores


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tfds"))
    tiny_tfds.build(path)
    return path


def test_several_datasets_in_one_run_match_scikit_learn(cifar_dir):
    config = digits_clip.get_config()
    names = [f"thing {i}" for i in range(10)]
    config.eval.zero_shot_datasets = (
        {"name": "cifar10", "data_dir": cifar_dir, "split": "test",
         "templates": ("a photo of a {}.", "a {}.")},
        {"name": "cifar10", "data_dir": cifar_dir, "split": "train", "templates": "clip_imagenet",
         "class_names": tuple(names)},
    )
    steps = zero_shot_datasets.make_steps(config, embed_images, embed_texts, HashTokenizer(),
                                          suite.class_prompts)
    state = types.SimpleNamespace(params=None, model_state=None)
    results = {k: v for step in steps for k, v in step(state, None).items()}
    assert set(results) == {f"zero_shot/cifar10[{split}]_top{k}"
                            for split in ("test", "train") for k in (1, 5)}
    dataset_names = data_lib.dataset_class_names(
        zero_shot_datasets.dataset_config(config, config.eval.zero_shot_datasets[0]))
    labels, scores = _oracle(config, config.eval.zero_shot_datasets[0], dataset_names,
                             ("a photo of a {}.", "a {}."))
    assert results["zero_shot/cifar10[test]_top1"] == pytest.approx(
        accuracy_score(labels, scores.argmax(1)))
    templates = zero_shot_datasets.prompt_set("clip_imagenet")["templates"]
    labels, scores = _oracle(config, config.eval.zero_shot_datasets[1], names, templates)
    assert results["zero_shot/cifar10[train]_top1"] == pytest.approx(
        accuracy_score(labels, scores.argmax(1)))
    assert results["zero_shot/cifar10[train]_top5"] == pytest.approx(
        top_k_accuracy_score(labels, scores, k=5, labels=range(10)))


def test_the_shipped_clip_imagenet_prompts():
    prompts = zero_shot_datasets.prompt_set("clip_imagenet")
    assert len(prompts["class_names"]) == 1000 and len(prompts["templates"]) == 80
    assert prompts["class_names"][0] == "tench" and all("{}" in t for t in prompts["templates"])


def test_bad_entries_are_one_line_errors():
    config = digits_clip.get_config()
    with pytest.raises(ValueError, match="unknown: split_name"):
        zero_shot_datasets.dataset_config(config, {"name": "cifar10", "split_name": "test"})
    with pytest.raises(ValueError, match="no prompt set 'imagenet'"):
        zero_shot_datasets.dataset_config(config, {"name": "cifar10", "templates": "imagenet"})
