"""webdataset shards and CSVs: decoding, clear errors, bad records skipped and counted, resume
and per-process reading through the pipeline."""
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from contrastive.data import csv_source, decode, pipeline, webdataset_source
from tests.data import image_text_files as files


def record_ids(record, rng):
    """Transform naming the record each row came from (by its colour) and its rng draw."""
    return {"id": np.int64(files.record_of(record["image"])), "draw": rng.integers(1 << 30)}


def test_expand_braces():
    assert webdataset_source.expand_braces("/d/{000..002}.tar") == [
        "/d/000.tar", "/d/001.tar", "/d/002.tar"]
    assert webdataset_source.expand_braces("a{1,2}b::c{8..10}") == [
        "a1b", "a2b", "c8", "c9", "c10"]


def test_webdataset_records_decode_to_their_images_and_captions(tmp_path):
    source = webdataset_source.WebDatasetSource(files.write_shards(tmp_path, 3, 5))
    assert len(source) == 15
    for i in range(15):
        record = source[i]
        assert record["image"].dtype == np.uint8 and record["image"].shape == (16, 16 + i % 3, 3)
        assert files.record_of(record["image"]) == i
        assert record["captions"]["text"] == (files.caption(i),)
        assert record["key"] == f"{i:09d}"


@pytest.mark.parametrize("separator", [",", "\t"])
def test_csv_records_decode_to_their_images_and_captions(tmp_path, separator):
    source = csv_source.CsvSource(str(files.write_csv(tmp_path, 6, separator)))
    assert len(source) == 6
    for i in range(6):
        assert files.record_of(source[i]["image"]) == i
        assert source[i]["captions"]["text"] == (files.caption(i),)


def test_user_mistakes_are_one_clear_error(tmp_path):
    pattern = files.write_shards(tmp_path / "shards", 2, 2)
    with pytest.raises(ValueError, match="shard not found: .*00002.tar"):
        webdataset_source.WebDatasetSource(pattern.replace("00001", "00002"))
    path = files.write_csv(tmp_path, 2)
    with pytest.raises(ValueError, match="no column 'url'.*'filepath', 'title'"):
        csv_source.CsvSource(str(path), image_column="url")
    with pytest.raises(ValueError, match="CSV file not found: .*nope.csv"):
        csv_source.CsvSource(str(tmp_path / "nope.csv"))


def test_unusual_but_valid_images_become_rgb_uint8():
    rgb = Image.new("RGB", (5, 4), (200, 30, 90))
    cmyk = decode.decode_image(files.encode(rgb.convert("CMYK")))
    np.testing.assert_array_equal(cmyk, np.asarray(rgb.convert("CMYK").convert("RGB")))
    deep = np.full((4, 5), 51400, np.uint16)  # 16-bit greyscale: 51400 >> 8 == 200
    decoded = decode.decode_image(files.encode(Image.fromarray(deep), "PNG"))
    assert decoded.dtype == np.uint8 and decoded.shape == (4, 5, 3) and (decoded == 200).all()
    grey = decode.decode_image(files.encode(Image.new("L", (3, 3), 77), "PNG"))
    assert grey.shape == (3, 3, 3) and (grey == 77).all()


@pytest.mark.parametrize("mode, subsampling", [("RGB", 0), ("RGB", 2), ("L", 0)])
def test_jpegs_decode_to_the_pixels_pil_gives(mode, subsampling):
    # The fast path (simplejpeg) against the oracle, PIL on the same bytes.
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (37, 53, 3), np.uint8)).convert(mode)
    data = files.encode_jpeg(noisy, subsampling)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decode.decode_image(data), expected)


def test_a_decompression_bomb_is_a_bad_record():
    header_only = files.encode_jpeg(Image.new("RGB", (8, 8)), 0)
    # A JPEG whose frame header claims 60,000 x 60,000 pixels (bytes past it do not matter).
    start = header_only.index(b"\xff\xc0") + 5
    bomb = header_only[:start] + (60_000).to_bytes(2, "big") * 2 + header_only[start + 4:]
    with pytest.raises(decode.BadRecordError, match="decompression bomb"):
        decode.decode_image(bomb)


BAD = {3: "corrupt jpeg", 7: "no caption", 8: "empty caption", 12: "no image", 13: "truncated"}


def _damage(i, parts):
    kind = BAD.get(i)
    if kind == "corrupt jpeg":
        parts["jpg"] = b"\xff\xd8 not really a jpeg"
    elif kind == "no caption":
        del parts["txt"]
    elif kind == "empty caption":
        parts["txt"] = b"  \n"
    elif kind == "no image":
        del parts["jpg"]
    elif kind == "truncated":
        parts["jpg"] = parts["jpg"][: len(parts["jpg"]) // 2]
    return parts


def _expected_skips(num_records, bad):
    """Oracle: position p (unshuffled) passes over the run of bad records starting at p."""
    skips = []
    for p in range(num_records):
        run = 0
        while (p + run) % num_records in bad:
            run += 1
        skips.append(run)
    return skips


@pytest.fixture
def damaged_shards(tmp_path):
    pattern = files.write_shards(tmp_path, 4, 4, _damage)
    with tarfile.open(tmp_path / "00004.tar", "w"):  # an empty shard
        pass
    return pattern.replace("00003}", "00004}")


def test_bad_records_are_skipped_and_counted(damaged_shards):
    source = webdataset_source.WebDatasetSource(damaged_shards)
    assert len(source) == 16 and source.stats == {"data_empty_shards": 1}
    iterator = pipeline.make_iterator(source, record_ids, global_batch_size=4, seed=0,
                                      shuffle=False, num_epochs=1)
    ids, per_batch = [], []
    for batch in iterator:
        ids += batch["id"].tolist()
        per_batch.append(iterator.last_skipped)
    skips = _expected_skips(16, set(BAD))
    # each position holds the first good record at or after it
    assert ids == [p + s for p, s in zip(range(16), skips)]
    assert not set(ids) & set(BAD)
    assert per_batch == [sum(skips[b:b + 4]) for b in range(0, 16, 4)]
    assert iterator.records_skipped == sum(skips) > len(BAD)  # runs of two count twice


def test_csv_bad_rows_are_skipped(tmp_path):
    path = files.write_csv(tmp_path, 8, bad={2: ("images/missing.jpg", "a caption"),
                                             5: ("images/0005.jpg", "")})
    source = csv_source.CsvSource(str(path))
    batch = next(pipeline.make_iterator(source, record_ids, global_batch_size=8, seed=0,
                                        shuffle=False))
    assert batch["id"].tolist() == [0, 1, 3, 3, 4, 6, 6, 7]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return webdataset_source.WebDatasetSource(
        files.write_shards(tmp_path_factory.mktemp("shards"), 4, 6))


def test_two_processes_read_disjoint_records_covering_the_epoch(shards):
    per_process = []
    for process_index in range(2):
        iterator = pipeline.make_iterator(shards, record_ids, global_batch_size=8, seed=3,
                                          num_epochs=1, process_index=process_index,
                                          process_count=2)
        per_process.append([i for b in iterator for i in b["id"].tolist()])
    assert not set(per_process[0]) & set(per_process[1])
    assert sorted(per_process[0] + per_process[1]) == list(range(24))


def test_resume_gives_the_same_next_batches(damaged_shards):
    source = webdataset_source.WebDatasetSource(damaged_shards)
    make = lambda: pipeline.make_iterator(source, record_ids, global_batch_size=4, seed=1)
    uninterrupted = make()
    expected = [next(uninterrupted) for _ in range(9)][5:]
    interrupted = make()
    for _ in range(5):
        next(interrupted)
    state = json.loads(json.dumps(interrupted.get_state()))
    interrupted.close()
    resumed = make()
    resumed.set_state(state)
    assert resumed.records_skipped == state["records_skipped"]
    for want in expected:
        got = next(resumed)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    assert resumed.records_skipped == uninterrupted.records_skipped


def test_processes_read_disjoint_shards_covering_the_epoch(shards):
    from contrastive.data import sources

    groups = sources.process_groups(shards, 2)
    per_process = []
    for process_index in range(2):
        iterator = pipeline.make_iterator(shards, record_ids, global_batch_size=8, seed=3,
                                          num_epochs=1, process_index=process_index,
                                          process_count=2, process_groups=groups)
        ids = [i for b in iterator for i in b["id"].tolist()]
        assert {i // 6 % 2 for i in ids} == {process_index}  # record i lives in shard i // 6
        assert ids != sorted(ids)  # shuffled within the process's shards
        per_process.append(ids)
    assert sorted(per_process[0] + per_process[1]) == list(range(24))
    with pytest.raises(ValueError, match="4 webdataset shards cannot be split over 5"):
        sources.process_groups(shards, 5)
