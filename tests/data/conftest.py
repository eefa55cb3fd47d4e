"""Shared fixtures: the digits default built once per session, and its caption tokenizer."""
import pytest

from contrastive.data import digits


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    digits.prepare(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def digits_train(digits_dir):
    return digits.load_split("train", digits_dir)


@pytest.fixture(scope="session")
def digits_test(digits_dir):
    return digits.load_split("test", digits_dir)


@pytest.fixture(scope="session")
def caption_tokenizer():
    return digits.caption_tokenizer(max_len=12)
