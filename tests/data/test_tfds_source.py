"""Real datasets from a user data_dir: tiny cifar10- and coco_captions-shaped datasets built
locally, read by name through the same pipeline as the default; and the missing-data error."""
import json
import pathlib
import shutil

import numpy as np
import pytest

from contrastive.data import augment, examples, pipeline, tfds_source
from contrastive.data import tokenizer as tokenizer_lib
from . import tiny_tfds


@pytest.fixture(scope="module")
def user_data_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("user_tfds"))
    tiny_tfds.build(data_dir)
    return data_dir


def test_labelled_images_load_by_name(user_data_dir):
    source = tfds_source.load_split("cifar10", "train", user_data_dir)
    assert len(source) == tiny_tfds.CIFAR_EXAMPLES["train"]
    record = source[0]
    assert record["image"].shape == (32, 32, 3) and record["image"].dtype == np.uint8
    assert 0 <= record["label"] < 10


def test_split_slicing(user_data_dir):
    source = tfds_source.load_split("cifar10", "train[:25%]", user_data_dir)
    assert len(source) == tiny_tfds.CIFAR_EXAMPLES["train"] // 4


def test_image_text_pairs_through_pipeline(user_data_dir):
    source = tfds_source.load_split("coco_captions/2017", "train", user_data_dir)
    texts = [tiny_tfds.caption(i, k) for i in range(24) for k in range(5)]
    tokenizer = tokenizer_lib.SentencePieceTokenizer(
        tokenizer_lib.train_sentencepiece(texts, vocab_size=60), max_len=64
    )
    transform = examples.ImageTextExample(tokenizer, image_size=16)
    batches = pipeline.make_iterator(source, transform, global_batch_size=8, seed=0, num_epochs=1)
    seen_captions = set()
    for batch in batches:
        assert batch["image"].shape == (8, 16, 16, 3) and batch["image"].dtype == np.float32
        assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
        assert batch["tokens"].shape == (8, 64) and batch["tokens"].dtype == np.int32
        np.testing.assert_array_equal(batch["label"], -1)  # coco has no class label.
        seen_captions.update(tokenizer.decode(t) for t in batch["tokens"])
    assert len(batches) == 3
    # Every decoded caption is one of its image's real captions (lower-cased by the model).
    assert seen_captions <= {t.lower() for t in texts}
    assert len(seen_captions) == len(source)


def test_caption_choice_depends_on_seed(user_data_dir):
    source = tfds_source.load_split("coco_captions/2017", "train", user_data_dir)
    record = source[0]
    choices = {
        examples.pick_caption(record, examples.Fields(), np.random.default_rng(s))
        for s in range(40)
    }
    assert len(choices) > 1
    assert choices <= {t.decode() for t in record["captions"]["text"]}


def test_simclr_and_evaluation_batches(user_data_dir):
    source = tfds_source.load_split("cifar10", "test", user_data_dir)
    two_views = examples.TwoViewExample(augment.SimCLRAugment(size=24, blur_probability=0.0))
    batch = next(pipeline.make_iterator(source, two_views, global_batch_size=4, seed=3))
    assert batch["view1"].shape == batch["view2"].shape == (4, 24, 24, 3)
    assert not np.array_equal(batch["view1"], batch["view2"])

    evaluation = pipeline.make_iterator(
        source, examples.LabelledImageExample(), global_batch_size=5, seed=0,
        shuffle=False, num_epochs=1, drop_remainder=False,
    )
    batches = list(evaluation)
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(labels, [source[i]["label"] for i in range(len(source))])
    assert batches[-1]["mask"].sum() == len(source) % 5


def test_missing_data_dir_is_one_clear_error(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(tfds_source.DatasetUnavailableError) as error:
        tfds_source.load_split("cifar10", "train", missing)
    message = str(error.value)
    assert str(missing) in message
    assert f"tfds build cifar10 --data_dir={missing} --file_format=array_record" in message


def test_missing_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(tfds_source.DatasetUnavailableError) as error:
        tfds_source.load_split("imagenet2012", "train", tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "tfds build imagenet2012" in message
    assert "manual_dir" in message


def test_unknown_split_lists_the_splits(user_data_dir):
    with pytest.raises(ValueError, match=r"no split 'validation'.*'test', 'train'"):
        tfds_source.load_split("cifar10", "validation", user_data_dir)


def test_tfrecord_dataset_is_one_clear_error(user_data_dir, tmp_path):
    """A dataset prepared in tfds' default TFRecord format has no random access."""
    prepared = pathlib.Path(user_data_dir) / "cifar10"
    shutil.copytree(prepared, tmp_path / "cifar10")
    info_file = tmp_path / "cifar10" / "3.0.2" / "dataset_info.json"
    info = json.loads(info_file.read_text())
    info["fileFormat"] = "tfrecord"
    info_file.write_text(json.dumps(info))
    with pytest.raises(tfds_source.DatasetUnavailableError, match="stored as tfrecord") as error:
        tfds_source.load_split("cifar10", "train", tmp_path)
    assert "--file_format=array_record" in str(error.value)
