"""metrics.jsonl and eval.jsonl: one JSON object per line, each with its "step"."""
import json
import os


def read_jsonl(path: str) -> list[dict]:
    """Every complete, parseable line of a JSON-lines file (a half-written last line, left by
    a killed process, is ignored)."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class JsonlWriter:
    """Appends records; on a resumed run it first drops the records of steps after the
    checkpoint (they are about to be recomputed), so the file reads as one uninterrupted run.

    Only the writing process (process 0) passes enabled=True; the others write nothing.
    """

    def __init__(self, path: str, resume_step: int, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        kept = [r for r in read_jsonl(path) if r.get("step", 0) <= resume_step]
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, records: list[dict]) -> None:
        if not self.enabled or not records:
            return
        with open(self.path, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
            f.flush()
