"""Shared fixtures: the splits of the digits default (built once, tests/conftest.py), and its
caption tokenizer."""
import pytest

from contrastive.data import digits


@pytest.fixture(scope="session")
def digits_train(digits_data_dir):
    return digits.load_split("train", digits_data_dir)


@pytest.fixture(scope="session")
def digits_test(digits_data_dir):
    return digits.load_split("test", digits_data_dir)


@pytest.fixture(scope="session")
def caption_tokenizer():
    return digits.caption_tokenizer(max_len=12)
