"""A full disk, a read-only workdir, a permission denied: one line naming the path and the
errno (exit status 1), at the failing write, and nothing already saved lost.

The disk is a small tmpfs mounted for the test, so these run only where mount is allowed (as
root); permission is denied by dropping root's capability to override it (capsh).
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.train.helpers import ROOT, device_env, main_command


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 MiB tmpfs at tmp_path/disk, unmounted afterwards (skipped where mount is refused)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


def _fill(disk):
    """Writes a file until the disk is full."""
    block = b"\0" * (1 << 20)
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_is_one_line_at_the_failing_write_and_keeps_the_saved_steps(
        run_config, tmpfs):
    config = run_config.copy_and_resolve_references()
    config.total_steps = 400  # long enough that the disk fills while it runs
    config.keep_checkpoints = 2
    workdir = tmpfs / "run"
    process = subprocess.Popen(main_command(config, workdir), cwd=ROOT, env=device_env(8),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (workdir / "checkpoints" / "4").is_dir() and time.time() < deadline:
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.05)
    _fill(tmpfs)
    filled = time.time()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    line = _one_error_line(stderr)
    assert "No space left on device (errno 28, ENOSPC)" in line and str(workdir) in line, line
    assert time.time() - filled < 60
    saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and len(stderr.splitlines()) <= 3, stderr[-3000:]  # (tfds may warn once)

    # Space again: the newest saved step restores and evaluates (nothing saved was lost).
    (tmpfs / "filler").unlink()
    result = subprocess.run([sys.executable, "-m", "contrastive.evaluate",
                             f"--workdir={workdir}"], cwd=ROOT, env=device_env(8),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"step {saved[-1]}" in result.stdout


def test_a_read_only_workdir_is_one_line(run_config, tmpfs):
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    result = subprocess.run(main_command(run_config, tmpfs / "run"), cwd=ROOT,
                            env=device_env(8), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert "Read-only file system (errno 30, EROFS)" in line and str(tmpfs / "run") in line


def test_permission_denied_is_one_line(run_config, tmp_path):
    if shutil.which("capsh") is None or os.geteuid() != 0:
        pytest.skip("needs root and capsh (libcap2-bin) to drop the permission override")
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o555)
    command = main_command(run_config, parent / "run")
    result = subprocess.run(["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--",
                             "-c", " ".join(f"'{a}'" for a in command)],
                            cwd=ROOT, env=device_env(8), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    assert "Permission denied (errno 13, EACCES)" in line and str(parent / "run") in line


def test_a_save_that_cannot_fit_is_refused_before_it_writes(monkeypatch, tmp_path):
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

    from contrastive import checkpoint  # pylint: disable=import-outside-toplevel

    state = {"w": jnp.ones((256, 256))}
    with checkpoint.Checkpointer(str(tmp_path / "checkpoints"), async_save=False) as saver:
        saver.save(1, state, {"position": 1})
        size = sum(p.stat().st_size for p in (tmp_path / "checkpoints" / "1").rglob("*")
                   if p.is_file())
        free = int(size * 1.1)  # less than the size of step 1 with its margin
        monkeypatch.setattr(checkpoint.shutil, "disk_usage",
                            lambda path: shutil._ntuple_diskusage(10 * size, 9 * size, free))
        with pytest.raises(OSError) as raised:
            saver.save(2, state, {"position": 2})
    assert raised.value.errno == 28 and raised.value.filename == str(tmp_path / "checkpoints")
    assert "the checkpoint of step 2 needs" in raised.value.strerror
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1"]
