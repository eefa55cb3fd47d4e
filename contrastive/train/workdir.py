"""A run's directory kept safe from the user's mistakes: one writer at a time, a rerun held to
the config it was trained with, a finished run left alone.

- `Lock`: an exclusive `flock` on `.lock-<process>` that holds the host and PID of its owner.
  The kernel drops it when that process dies, so a lock left by a killed run is found stale
  and taken over; a live one makes a second run exit with one line naming its owner.
- `check_rerun(saved, new)`: the fields a rerun changes. Those that only say how long to
  train, how often to log or save, how to lay out the devices or evaluate (SAFE_TO_CHANGE) are
  allowed and said; any other change (the model, the optimiser, the loss, the data) would
  resume a state made by another recipe, so the run is refused with the differing fields.
"""
import fcntl
import json
import os
import socket
import time

from contrastive.errors import UserError

# Fields (or prefixes ending in ".") a resumed run may change: none alters what the state
# holds or how the steps so far were computed.
SAFE_TO_CHANGE = (
    "total_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
    "async_checkpoints", "plots", "progress_bar", "profile_steps", "mesh.", "sharding_rules.",
    "num_microbatches", "loss_block_size", "eval.", "data.num_threads", "data.worker_count",
    "data.data_dir", "data.shards", "data.eval_shards", "data.csv_path", "data.eval_csv_path",
)


def flatten(tree, prefix: str = "") -> dict:
    """{"a.b.c": leaf} of nested dicts (a config's JSON form)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
            if not value:
                flat[f"{prefix}{key}"] = {}
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _is_safe(field: str) -> bool:
    return any(field == s or (s.endswith(".") and field.startswith(s)) or field + "." == s
               for s in SAFE_TO_CHANGE)


def check_rerun(saved: dict, new: dict, workdir: str) -> list[str]:
    """The safe changes from `saved` to `new` (JSON forms of two configs) as 'field: old ->
    new' lines; raises UserError listing the unsafe ones. A field the saved config lacks (added
    to the code since) is not a change."""
    old, now = flatten(saved), flatten(new)
    changed = sorted(f for f in now.keys() | old.keys()
                     if f in old and old.get(f) != now.get(f, "(absent)"))
    said = [f"{f}: {old[f]!r} -> {now.get(f, '(absent)')!r}" for f in changed]
    unsafe = [line for f, line in zip(changed, said) if not _is_safe(f)]
    if unsafe:
        raise UserError(
            f"{workdir} holds a run trained with another config: {'; '.join(unsafe)}. Resuming "
            "would continue a state made by another recipe: rerun with the saved values (see "
            f"{os.path.join(workdir, 'config.json')}) or choose another --workdir")
    return [line for f, line in zip(changed, said) if _is_safe(f)]


def read_json(path: str) -> dict | None:
    """The JSON object in `path`, or None if there is none (or it is not JSON)."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


class Lock:
    """`with Lock(workdir, process_index):` — this process is the workdir's only writer."""

    def __init__(self, workdir: str, process_index: int = 0):
        self.path = os.path.join(workdir, f".lock-{process_index}")
        self.took_over = None  # the stale owner's record, if the lock was taken over
        self._fd = None

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise UserError(
                f"{os.path.dirname(self.path)} is in use by process {owner.get('pid', '?')} on "
                f"{owner.get('host', '?')} (since {owner.get('started', '?')}; lock "
                f"{self.path}): wait for it to finish, stop it, or choose another --workdir"
            ) from None
        self.took_over = _owner(fd) or None  # a record but no lock: its owner died
        record = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc):
        # Emptied, not deleted: a process waiting on this file must not lock a deleted one.
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing releases the flock
        self._fd = None
        return False


def _owner(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except json.JSONDecodeError:
        return {}
