"""Small webdataset shards and CSVs of generated images, for the file-source tests.

Record i is a solid-colour image whose colour encodes i (so a decoded image names its record)
with caption captions[i]; `bad` puts damaged records in named places.
"""
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from contrastive.data import digits


def colour(i: int) -> tuple[int, int, int]:
    return (40 + (i * 37) % 180, 40 + (i * 11) % 180, 40 + i % 180)


def record_of(image: np.ndarray) -> int:
    """The record index whose colour the (decoded, maybe lossy) image has."""
    mean = np.asarray(image, np.float64).reshape(-1, 3).mean(axis=0)
    return int(np.argmin([np.abs(mean - colour(i)).sum() for i in range(1000)]))


def caption(i: int) -> str:
    return digits.captions_for(i % 10)[0]


def encode_jpeg(image: Image.Image, subsampling: int) -> bytes:
    """JPEG bytes with chroma subsampling 0 (4:4:4) or 2 (4:2:0; ignored for greyscale)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, subsampling=subsampling)
    return buffer.getvalue()


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, quality=95) if fmt == "JPEG" else image.save(out, format=fmt)
    return out.getvalue()


def jpeg(i: int, size: int = 16) -> bytes:
    return encode(Image.new("RGB", (size + i % 3, size), colour(i)))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(directory: Path, num_shards: int, per_shard: int, members=None) -> str:
    """Shards of per_shard records each; members(i) -> {extension: bytes} overrides record i's.
    Returns the brace pattern."""
    directory.mkdir(parents=True, exist_ok=True)
    for shard in range(num_shards):
        with tarfile.open(directory / f"{shard:05d}.tar", "w") as tar:
            for i in range(shard * per_shard, (shard + 1) * per_shard):
                parts = {"jpg": jpeg(i), "txt": caption(i).encode(), "json": b"{}"}
                if members is not None:
                    parts = members(i, parts)
                for extension, data in parts.items():
                    _add(tar, f"{i:09d}.{extension}", data)
    return str(directory / f"{{00000..{num_shards - 1:05d}}}.tar")


def write_csv(directory: Path, count: int, separator: str = ",", bad=None) -> Path:
    """A CSV of images/NNN.jpg paths and captions (bad: {i: (path, caption)} overrides)."""
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        path = f"images/{i:04d}.jpg"
        (directory / path).write_bytes(jpeg(i))
        rows.append((path, caption(i)))
    for i, row in (bad or {}).items():
        rows[i] = row
    name = directory / ("data.tsv" if separator == "\t" else "data.csv")
    lines = [separator.join(("filepath", "title"))]
    lines += [separator.join((p, f'"{c}"' if separator == "," else c)) for p, c in rows]
    name.write_text("\n".join(lines) + "\n")
    return name
