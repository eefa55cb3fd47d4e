"""Decoded + augmented image-text examples/s per CPU core, at 224 px, from webdataset shards,
a CSV of JPEG files and a tfds (array_record) dataset of the same generated JPEGs.

  python experiments/data_throughput.py [--images=512 --side=320 --batches=12]

One pipeline thread reads the OpenCLIP recipe: random-resized crop (area 0.9-1) to 224, uint8
out, tokenized caption. Per core = examples per second of this process's CPU time (so a busy,
shared machine does not deflate it); wall-clock examples/s are reported too.
Writes results/data_throughput.{json,md}.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from contrastive.data import (digits, image_text, pipeline, prepare,  # noqa: E402
                              webdataset_source, csv_source)
from experiments.benchlib import RESULTS  # noqa: E402


def photo(i: int, side: int) -> Image.Image:
    """A smooth random image (JPEG-compresses like a photo, unlike white noise)."""
    rng = np.random.default_rng(i)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    width = side + (i % 3) * side // 4  # mixed aspect ratios
    return Image.fromarray(small).resize((width, side), Image.BICUBIC)


def write_csv(directory: Path, count: int, side: int) -> Path:
    (directory / "images").mkdir(parents=True)
    lines = ["filepath,title"]
    for i in range(count):
        photo(i, side).save(directory / f"images/{i:05d}.jpg", quality=90)
        lines.append(f'images/{i:05d}.jpg,"{digits.captions_for(i % 10)[0]}"')
    path = directory / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def tfds_source(directory: Path, csv_path: Path):
    import tensorflow_datasets as tfds

    rows = csv_source.CsvSource(str(csv_path))
    with tfds.core.registered.skip_registration():
        class WebImages(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(encoding_format="jpeg"),
                    "captions": tfds.features.Sequence({"text": tfds.features.Text()})}))

            def _split_generators(self, dl_manager):
                return {"train": self._generate_examples()}

            def _generate_examples(self):
                root = csv_path.parent
                for i in range(len(rows)):
                    yield i, {"image": str(root / f"images/{i:05d}.jpg"),
                              "captions": {"text": [digits.captions_for(i % 10)[0]]}}

        WebImages(data_dir=str(directory)).download_and_prepare(file_format="array_record")
    from contrastive.data import tfds_source as tfds_lib
    return tfds_lib.load_split("web_images", "train", str(directory))


def examples_per_second(source, batches: int, batch_size: int = 32) -> float:
    transform = image_text.AugmentedImageTextExample(
        digits.caption_tokenizer(16), image_text.ImageTextAugment(224, "random_resized"))
    iterator = pipeline.make_iterator(source, transform, global_batch_size=batch_size, seed=0,
                                      num_threads=1)
    next(iterator)  # warm-up
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    count = batches * batch_size
    rates = (count / (time.process_time() - cpu_start), count / (time.perf_counter() - start))
    iterator.close()
    return rates


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--side", type=int, default=320)
    parser.add_argument("--batches", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path = write_csv(tmp / "csv", args.images, args.side)
        shards = prepare.csv_to_webdataset(str(csv_path), str(tmp / "shards"), shard_size=128)
        found = {
            "webdataset": webdataset_source.WebDatasetSource(shards["pattern"]),
            "csv": csv_source.CsvSource(str(csv_path)),
            "tfds": tfds_source(tmp / "tfds", csv_path),
        }
        measured = {name: examples_per_second(s, args.batches) for name, s in found.items()}
    rates = {name: round(cpu, 1) for name, (cpu, _) in measured.items()}
    result = {"examples_per_second_per_core": rates,
              "examples_per_second_wall": {n: round(w, 1) for n, (_, w) in measured.items()}, "image_side_stored": args.side,
              "crop": "random_resized (0.9, 1.0) -> 224, uint8", "threads": 1,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
              "command": "python experiments/data_throughput.py " + " ".join(sys.argv[1:])}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    table = ["| source | examples/s per core (224 px) |", "| --- | --- |"]
    table += [f"| {name} | {rate:.0f} |" for name, rate in rates.items()]
    (RESULTS / "data_throughput.md").write_text(
        f"Decoded + augmented examples/s, one pipeline thread, {args.side}-px JPEGs "
        f"(mixed aspect) -> random-resized crop 224, uint8; `{result['command']}`, load "
        f"average {result['load_average']:.1f} on {os.cpu_count()} cores.\n\n"
        + "\n".join(table) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
