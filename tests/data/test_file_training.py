"""A few training steps on webdataset shards and on a CSV, with the bad records counted in
metrics.jsonl (the CSV run is marked slow: one more ~30 s compile); and (slow) SIGKILL + restart on shards equals the uninterrupted run."""
import json
import signal
import subprocess
import sys

import pytest

from contrastive.train import loop
from tests.data import image_text_files as files
from tests.train.helpers import (ROOT, device_env, losses, main_command, max_rel_diff,
                                 tiny_config)

RECORDS, BATCH, STEPS = 12, 8, 3  # 24 positions: two epochs


def file_config(tmp_path, **fields):
    settings = {f"eval__{k}": False for k in ("zero_shot", "retrieval", "geometry", "knn")}
    settings.update(batch_size=BATCH, total_steps=STEPS, mesh={"data": -1},
                    data__image_size=8, checkpoint_every=0)
    settings.update(fields)
    return tiny_config(str(tmp_path / "unused"), **settings)


def metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_training_on_webdataset_counts_bad_records(tmp_path):
    bad = {5}
    def damage(i, parts):
        if i in bad:
            parts["jpg"] = b"garbage"
        return parts
    pattern = files.write_shards(tmp_path / "shards", 3, RECORDS // 3, damage)
    # The default evaluation, kNN and probe included: shards carry no class labels, so those
    # are skipped (said in the log) and retrieval runs.
    config = file_config(tmp_path, data__name="webdataset", data__shards=pattern,
                         eval__retrieval=True, eval__knn=True, eval__linear_probe=True)
    summary = loop.train_and_evaluate(config, str(tmp_path / "run"))
    lines = metrics(tmp_path / "run")
    assert summary["step"] == STEPS and len(lines) == STEPS
    assert "i2t_r@1" in summary and "knn_top1" not in summary
    # each epoch visits the bad record once; nothing before it is bad, so one skip per visit
    assert sum(l["data_skipped"] for l in lines) == STEPS * BATCH // RECORDS * len(bad)
    assert all(l["data_empty_shards"] == 0 and l["data_wait_s"] >= 0 for l in lines)
    assert all(0 <= l["data_wait_s"] <= l["step_time_s"] * STEPS for l in lines)


@pytest.mark.slow  # the same pipeline as webdataset's (covered fast in test_file_sources)
def test_training_on_csv(tmp_path):
    path = files.write_csv(tmp_path / "csv", RECORDS)
    config = file_config(tmp_path, data__name="csv", data__csv_path=str(path))
    summary = loop.train_and_evaluate(config, str(tmp_path / "run"))
    lines = metrics(tmp_path / "run")
    assert summary["step"] == STEPS and sum(l["data_skipped"] for l in lines) == 0
    assert all(l["loss"] > 0 for l in lines)


@pytest.mark.slow
def test_kill_9_and_restart_on_shards_gives_the_uninterrupted_losses(tmp_path):
    pattern = files.write_shards(tmp_path / "shards", 3, RECORDS // 3)
    config = file_config(tmp_path, data__name="webdataset", data__shards=pattern,
                         total_steps=12, checkpoint_every=3)
    reference = tmp_path / "reference"
    loop.train_and_evaluate(config, str(reference))
    workdir = tmp_path / "killed"
    command = main_command(config, workdir)
    process = subprocess.Popen(command, cwd=ROOT, env=device_env(8),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None:
        path = workdir / "metrics.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= 7:  # past checkpoint 6
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    result = subprocess.run(command, cwd=ROOT, env=device_env(8), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 0 < int(result.stdout.split("resumed_from=")[1].split()[0]) < 12
    assert max_rel_diff(losses(workdir), losses(reference)) < 1e-5


@pytest.mark.slow
def test_two_processes_on_shards_count_every_bad_record(tmp_path):
    """2 processes x 4 devices (gloo): each walks its own 2 shards of 3 records twice in 3
    steps of 8, so the one bad record (in process 0's shard 0) is skipped twice in all."""
    from tests.train.helpers import free_port

    def damage(i, parts):
        if i == 1:
            parts["txt"] = b""
        return parts
    pattern = files.write_shards(tmp_path / "shards", 4, 3, damage)
    config = file_config(tmp_path, data__name="webdataset", data__shards=pattern)
    port = free_port()
    processes = [
        subprocess.Popen(
            main_command(config, tmp_path / "run", f"--coordinator_address=127.0.0.1:{port}",
                         "--num_processes=2", f"--process_id={i}"),
            cwd=ROOT, env=device_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        for i in range(2)
    ]
    for p in processes:
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
    lines = metrics(tmp_path / "run")
    assert len(lines) == STEPS and sum(l["data_skipped"] for l in lines) == 2


@pytest.mark.slow  # ~20 s: a 224-px ViT compile
def test_configs_clip_trains_on_img2dataset_shards_by_changing_two_fields(tmp_path):
    """img2dataset's layout (KEY.jpg, KEY.txt, KEY.json per record): configs/clip.py (shrunk by
    runlocal) needs only data.name and data.shards; its tokenizer (CLIP's BPE) ships with the
    package."""
    def with_json(i, parts):
        parts["json"] = json.dumps({"key": f"{i:09d}", "status": "success"}).encode()
        return parts
    pattern = files.write_shards(tmp_path / "shards", 2, 8, with_json)
    command = [sys.executable, "-m", "contrastive.main", "--config=configs/clip.py:runlocal",
               f"--workdir={tmp_path / 'run'}", "--config.data.name=webdataset",
               f"--config.data.shards={pattern}"]
    result = subprocess.run(command, cwd=ROOT, env=device_env(1), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["step"] == 4 and summary["loss"] > 0 and "i2t_r@1" in summary


def test_two_real_processes_read_disjoint_examples_covering_the_epoch(tmp_path):
    """2 processes x 4 devices (gloo), the trainer's data path: one epoch of 4 shards x 6
    records in 3 global batches of 8 gives each process 12 examples, the two sets disjoint and
    together the 24 (process p reads shards p, p + 2)."""
    from tests.train.helpers import free_port

    pattern = files.write_shards(tmp_path / "shards", 4, 6)
    port = free_port()
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.data.read_epoch_worker",
                          f"--shards={pattern}", f"--port={port}", f"--process_id={i}",
                          "--steps=3", "--batch=8"],
                         cwd=ROOT, env=device_env(4), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    reads = []
    for p in processes:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        reads.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [r["devices"] for r in reads] == [4, 4]
    ids = [r["ids"] for r in sorted(reads, key=lambda r: r["process"])]
    assert len(ids[0]) == len(ids[1]) == 12
    assert not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == list(range(24))
    for process, own in enumerate(ids):
        assert {i // 6 % 2 for i in own} == {process}  # record i lives in shard i // 6
