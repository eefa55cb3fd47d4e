"""python -m contrastive.data.prepare: CSV -> webdataset shards that read back as the CSV's
records; CSV -> a SentencePiece model; clear errors."""
import json
import subprocess
import sys

import numpy as np

from contrastive.data import csv_source, prepare, tokenizer, webdataset_source
from tests.data import image_text_files as files
from tests.train.helpers import ROOT


def test_csv_to_webdataset_keeps_every_good_row(tmp_path):
    path = files.write_csv(tmp_path / "csv", 7, bad={4: ("images/gone.jpg", "x")})
    result = prepare.csv_to_webdataset(str(path), str(tmp_path / "shards"), shard_size=3)
    assert result["records"] == 6 and result["skipped"] == 1 and result["shards"] == 2
    shards = webdataset_source.WebDatasetSource(result["pattern"])
    rows = csv_source.CsvSource(str(path))
    good = [i for i in range(7) if i != 4]
    assert len(shards) == len(good)
    for k, i in enumerate(good):  # byte-for-byte copies: identical decoded pixels
        np.testing.assert_array_equal(shards[k]["image"], rows[i]["image"])
        assert shards[k]["captions"] == rows[i]["captions"]


def test_command_line_sentencepiece_and_errors(tmp_path):
    path = files.write_csv(tmp_path, 30)
    model = tmp_path / "spm.model"
    run = lambda *a: subprocess.run([sys.executable, "-m", "contrastive.data.prepare", *a],
                                    cwd=ROOT, capture_output=True, text=True, timeout=120)
    done = run("--from=csv", f"--input={path}", "--to=sentencepiece", f"--output={model}",
               "--vocab_size=40")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["captions"] == 30
    spm = tokenizer.SentencePieceTokenizer.from_file(str(model), max_len=32)
    assert spm.decode(spm.encode(files.caption(3))) == files.caption(3).lower()
    failed = run("--from=csv", f"--input={path}", "--to=webdataset", f"--output={tmp_path}/w",
                 "--caption_column=text")
    assert failed.returncode == 1 and failed.stderr.strip().splitlines()[-1].startswith(
        "error: CSV") and "no column 'text'" in failed.stderr
