"""webdataset shards (img2dataset's output) as a random-access source, indexed with tarfile.

A shard is a tar of KEY.jpg (or .png, .webp, ...) + KEY.txt (+ KEY.json) members; the members
sharing a KEY form one record. Each shard is indexed once, when the source opens, by walking
its tar headers (no member data is read), into (offset, size) per member, so any record is one
seek and read. We use the standard library's tarfile rather than `wids`: wids needs a JSON
shard list with sample counts, and an index over headers is exact, small and has no
dependency; resume needs nothing more than random access.
"""
import itertools
import logging
import os
import re
import tarfile

from contrastive.data import decode

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff")
TEXT_EXTENSIONS = ("txt", "text", "caption")
_BRACE = re.compile(r"\{([^{}]*)\}")


def _expand_one(body: str) -> list[str]:
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        first, last = numeric.groups()
        width = len(first) if first.startswith("0") or len(first) == len(last) else 0
        return [str(i).zfill(width) for i in range(int(first), int(last) + 1)]
    return body.split(",")


def expand_braces(pattern: str) -> list[str]:
    """"/d/{00000..00002}.tar" -> ["/d/00000.tar", "/d/00001.tar", "/d/00002.tar"]; "{a,b}"
    alternatives too; several patterns may be joined with "::"."""
    paths = []
    for part in pattern.split("::"):
        pieces = _BRACE.split(part)  # literal, body, literal, body, ...
        choices = [[p] if i % 2 == 0 else _expand_one(p) for i, p in enumerate(pieces)]
        paths += ["".join(combo) for combo in itertools.product(*choices)]
    return paths


def _split_key(name: str) -> tuple[str, str]:
    """"dir/000001.jpg" -> ("dir/000001", "jpg"): the key ends at the basename's first dot."""
    directory, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


def index_shard(path: str) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """[(key, {extension: (data offset, size)})] in the shard's order."""
    records: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if member.isfile() and not member.name.rsplit("/", 1)[-1].startswith("."):
                    key, extension = _split_key(member.name)
                    records.setdefault(key, {})[extension] = (member.offset_data, member.size)
    except tarfile.ReadError as error:
        # A truncated tar keeps the records indexed before the damage; an unreadable one none.
        log.warning("webdataset shard %s is damaged after %d records: %s", path, len(records),
                    error)
    return list(records.items())


class WebDatasetSource:
    """len() records over the shards; source[i] -> decoded record (decode.make_record)."""

    def __init__(self, pattern: str):
        self.shards = expand_braces(pattern)
        missing = [p for p in self.shards if not os.path.isfile(p)]
        if missing:
            raise ValueError(f"webdataset shard not found: {missing[0]} "
                             f"({len(missing)} of {len(self.shards)} missing, pattern {pattern})")
        self._records = []  # (shard index, key, members)
        self.empty_shards = 0
        for shard_index, path in enumerate(self.shards):
            indexed = index_shard(path)
            if not indexed:
                self.empty_shards += 1
                log.warning("webdataset shard %s has no records", path)
            self._records += [(shard_index, key, members) for key, members in indexed]
        if not self._records:
            raise ValueError(f"webdataset shards {pattern} hold no records")

    def __len__(self) -> int:
        return len(self._records)

    @property
    def shard_of_record(self) -> list[int]:
        """The shard index of every record (for per-process shard assignment)."""
        return [shard for shard, _, _ in self._records]

    @property
    def stats(self) -> dict:
        return {"data_empty_shards": self.empty_shards}

    def _read(self, shard_index: int, location) -> bytes | None:
        if location is None:
            return None
        offset, size = location
        descriptor = os.open(self.shards[shard_index], os.O_RDONLY)  # unbuffered: half the cost
        try:
            return os.pread(descriptor, size, offset)
        finally:
            os.close(descriptor)

    def __getitem__(self, index: int) -> dict:
        shard_index, key, members = self._records[index]
        image = next((members[e] for e in IMAGE_EXTENSIONS if e in members), None)
        text = next((members[e] for e in TEXT_EXTENSIONS if e in members), None)
        return decode.make_record(self._read(shard_index, image), self._read(shard_index, text),
                                  key)
