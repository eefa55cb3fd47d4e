"""The digits default built once for the trainer tests."""
import pytest

from contrastive.data import digits


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("digits_tfds"))
    digits.prepare(data_dir)
    return data_dir
