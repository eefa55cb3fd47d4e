"""TensorBoard event files of a run (workdir/tensorboard), written without TensorFlow.

tensorboardX builds and writes them: a maintained, TensorFlow-free implementation of
TensorBoard's event format (numpy and protobuf only). Its `EventsWriter` is used directly,
not the queued `SummaryWriter`: events go to the file in the loop's own thread, and are on
disk before each checkpoint is written, so a killed run never loses steps it will not redo.
`tensorboard --logdir WORKDIR/tensorboard` shows them; jax.profiler traces
(`observe.Profiler`) go to the same directory, for TensorBoard's profile tab.

A resumed run first cuts the steps after its checkpoint out of the existing event files, as
`records.JsonlWriter` does for metrics.jsonl: those steps are about to be recomputed, and a
curve must not show them twice. (tensorboardX's `purge_step` only asks the reader to hide
them, which not every TensorBoard backend does.)
"""
import glob
import os
import re
import struct
import time

from tensorboardX import summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2

from contrastive.train import records as records_lib

FLUSH_SECONDS = 10  # a watched run's curves are at most this late (and flushed at each save)


def _records(path: str):
    """(the whole record, its payload) for each TFRecord of an event file: 8-byte length, its
    4-byte CRC, the payload, its CRC. A record cut short by a killed writer ends the file."""
    with open(path, "rb") as f:
        data = f.read()
    start = 0
    while start + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[start:start + 8])
        end = start + 12 + length + 4
        if end > len(data):
            break
        yield data[start:end], data[start + 12:start + 12 + length]
        start = end


def truncate_after(logdir: str, step: int) -> int:
    """Removes every event after `step` (and any half-written record) from the event files in
    logdir, each file rewritten atomically; returns how many events were removed."""
    removed = 0
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        records = list(_records(path))
        kept = [record for record, payload in records
                if event_pb2.Event.FromString(payload).step <= step]
        if sum(map(len, kept)) != os.path.getsize(path):
            removed += len(records) - len(kept)
            records_lib.write_atomically(path, b"".join(kept))
    return removed


def tag(name: str) -> str:
    """A TensorBoard tag: characters outside [-/\\w.] become "_" ("i2t_r@1" -> "i2t_r_1")."""
    return re.sub(r"[^-/\w.]", "_", name)


class EventWriter:
    """Scalars of every training step ("train/..."), every evaluation ("eval/...") and the
    config as text, into workdir/tensorboard. Only process 0 passes enabled=True."""

    def __init__(self, workdir: str, resume_step: int, config=None, enabled: bool = True):
        self.logdir = os.path.join(workdir, "tensorboard")
        self.writer = None
        if not enabled:
            return
        os.makedirs(self.logdir, exist_ok=True)
        truncate_after(self.logdir, resume_step)
        # A new file per invocation; the suffix keeps two starts in one second apart.
        self.writer = EventsWriter(os.path.join(self.logdir, "events"), f".{time.time_ns()}")
        self.flushed = time.time()
        if config is not None:
            # Indented four spaces: TensorBoard's markdown shows the JSON as code.
            text = "    " + config.to_json(indent=1).replace("\n", "\n    ")
            self._write(resume_step, summary.text("config", text))
            self.flush()

    def _write(self, step: int, proto) -> None:
        self.writer.write_event(event_pb2.Event(wall_time=time.time(), step=step, summary=proto))

    def _scalars(self, prefix: str, step: int, values: dict) -> None:
        for key, value in values.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._write(step, summary.scalar(tag(f"{prefix}/{key}"), value))
        if time.time() - self.flushed > FLUSH_SECONDS:
            self.flush()

    def train(self, lines: list[dict]) -> None:
        """metrics.jsonl's lines, one per step (null and non-numeric fields are skipped)."""
        if self.writer is not None:
            for line in lines:
                self._scalars("train", line["step"], line)

    def evaluation(self, step: int, metrics: dict) -> None:
        if self.writer is not None:
            self._scalars("eval", step, metrics)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.flushed = time.time()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
