"""Checkpoints behind one small module: orbax's CheckpointManager with two items per step,
"state" (the TrainState: params, optimiser state, step, rng, batch-norm statistics) and
"data" (the input iterator's position, JSON).

Orbax writes each step into a temporary directory and renames it when complete, so a process
killed mid-write leaves no step that looks finished. A step that still fails to restore (files
lost or damaged afterwards) is moved aside into `<directory>.unrestorable/` with a warning, and
the next older one is used. Nothing is ever deleted on a restore error: if no step restores (a
config that does not fit them), the run is refused and the checkpoints are left as they are.
"""
import contextlib
import errno
import logging
import os
import re
import shutil
import time

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from contrastive.errors import UserError, find_os_error

log = logging.getLogger(__name__)
# tensorstore (under orbax) reports a failed write as text: '... local file "PATH" ...
# [os_error_code='28']'; `_os_error` turns it back into the OSError it was.
_OS_ERROR_CODE = re.compile(r"os_error_code='(\d+)'")
_LOCAL_FILE = re.compile(r'local file "([^"]+)"')
# A step's size is estimated as the newest saved one's, with this margin for growth.
SPACE_MARGIN = 1.25


def _os_error(error: Exception, directory: str) -> OSError | None:
    """The OSError (errno, path) behind a failed orbax/tensorstore write, if it was one: found
    in the chain of causes, or read from tensorstore's text; a path-less one is given the
    checkpoint directory."""
    found = find_os_error(error)
    if found is None:
        code = _OS_ERROR_CODE.search(str(error))
        if code is None:
            return None
        path = _LOCAL_FILE.search(str(error))
        number = int(code.group(1))
        found = OSError(number, os.strerror(number), path.group(1) if path else None)
    if found.filename is None:
        found = OSError(found.errno, found.strerror, directory)
    return found


class _DropOrbaxWriteErrors(logging.Filter):
    """Orbax logs a failed background write (with its traceback) from each of its threads,
    and its unawaited futures log it again when collected; the Checkpointer raises that
    failure itself, once, so those records are dropped."""

    LOGGERS = ("absl", "asyncio")

    def filter(self, record):
        return not (record.levelno >= logging.ERROR and (
            "orbax" in record.pathname or "exception was never retrieved" in str(record.msg)))

    def attach(self):
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def detach(self):
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


class Checkpointer:
    """save and restore (the newest step that restores); keeps the last `keep` steps.

    A write that fails (disk full, read-only, permission denied) is raised as its OSError
    naming the path: before a save whose estimated size exceeds the free space, or at the
    first `check_for_errors` after a background write failed."""

    def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, create=True
        )
        self.directory = os.path.abspath(directory)
        self._quiet = _DropOrbaxWriteErrors()
        self._quiet.attach()
        with self._writes():
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_names=("state", "data")
            )

    @contextlib.contextmanager
    def _writes(self):
        """Re-raises a failed write as the OSError behind it, naming a path (the original
        as its cause)."""
        try:
            yield
        except Exception as error:  # noqa: BLE001 - only translated, never swallowed
            translated = _os_error(error, self.directory)
            if translated is None or translated is error:
                raise
            raise translated from error

    def save(self, step: int, state, data_state: dict) -> bool:
        """Starts writing `step` (in the background when async); False if it already exists."""
        with self._writes():
            steps = self._manager.all_steps()
            if step in steps:
                return False
            if steps:  # refuse before writing, rather than fail half-way through
                needed = SPACE_MARGIN * _tree_bytes(os.path.join(self.directory, str(max(steps))))
                free = shutil.disk_usage(self.directory).free
                if free < needed:
                    raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (the checkpoint of "
                                  f"step {step} needs ~{needed / 2**20:.1f} MiB, "
                                  f"{free / 2**20:.1f} MiB free)", self.directory)
            return self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
                ),
                force=True,
            )

    def restore(self, abstract_state):
        """(step, state, data_state) of the newest step that restores, or None if there is no
        checkpoint; UserError (nothing changed) if there are some and none restores.

        abstract_state: the TrainState as ShapeDtypeStructs with shardings, so every array
        is read straight into its sharded layout. Steps newer than the one restored failed
        to read; they are moved aside so that the run can write those steps again.
        """
        broken = []
        steps = sorted(self._manager.all_steps(), reverse=True)
        for step in steps:
            try:
                restored = self._manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state),
                        data=ocp.args.JsonRestore(),
                    ),
                )
            except Exception as error:  # noqa: BLE001 - any failure to read makes it unusable
                log.warning(
                    "Checkpoint at step %d in %s cannot be restored (%s: %s); skipping it and "
                    "trying an older one.", step, self.directory, type(error).__name__,
                    str(error).splitlines()[0][:300] if str(error) else "",
                )
                broken.append((step, error))
                continue
            self._set_aside([s for s, _ in broken])
            return step, restored.state, dict(restored.data)
        if broken:
            step, error = broken[0]
            raise UserError(
                f"none of the checkpoints in {self.directory} (steps "
                f"{', '.join(str(s) for s, _ in broken)}) restores into this config's state "
                f"(step {step}: {type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                "nothing was changed. Train with the config they were saved with, or move "
                "them away to start afresh")
        return None

    def _set_aside(self, steps):
        """Moves unreadable steps into <directory>.unrestorable/<step>-<time> (process 0;
        every process waits for the move)."""
        if not steps:
            return
        aside = f"{self.directory}.unrestorable"
        if jax.process_index() == 0:
            os.makedirs(aside, exist_ok=True)
            for step in steps:
                target = os.path.join(aside, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
                os.rename(os.path.join(self.directory, str(step)), target)
                log.warning("Moved the unrestorable checkpoint of step %d to %s.", step, target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("checkpoints set aside")
        self._manager.reload()

    def check_for_errors(self) -> None:
        """Raises the error of a background write that failed (e.g. the disk is full), at
        once rather than at the next save."""
        with self._writes():
            self._manager.check_for_errors()

    def wait(self) -> None:
        """Blocks until background writes are complete."""
        with self._writes():
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for background writes and releases the manager."""
        with self._writes():
            self._manager.close()
        self._quiet.detach()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        """Waits for the writes still running and closes; after an error, quietly (the
        error in flight is the one to report)."""
        if kind is None:
            self.wait()
            self.close()
        else:  # the filter of orbax's echoes stays: they come until the process ends
            with contextlib.suppress(Exception):
                self._manager.close()
        return False


class ReadOnlyCheckpoints:
    """A run's checkpoints opened for reading only (evaluation): the saved steps, and a partial
    restore of chosen parts of the state (e.g. params and model_state, whatever else it holds)."""

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        self._manager = None
        if os.path.isdir(self.directory):
            self._manager = ocp.CheckpointManager(
                self.directory,
                item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                               "data": ocp.JsonCheckpointHandler()},
                options=ocp.CheckpointManagerOptions(create=False),
            )

    def steps(self) -> list[int]:
        return [] if self._manager is None else sorted(self._manager.all_steps())

    def restore_state_items(self, step: int, target: dict) -> dict:
        """{name: restored tree} for the top-level state entries in `target` (abstract arrays
        with shardings); nothing else is read."""
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True,
        )))
        return dict(restored.state)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
