"""Decoded + augmented image-text examples/s per CPU core at 224 px, from webdataset shards,
a CSV of JPEG files and a tfds (array_record) dataset, against the step rate of the digits
main job measured in the same run.

  python experiments/data_throughput.py [--images=2048 --batches=4 --sizes=224,256,320x400]
      [--reference_metrics=workdirs/digits_clip/metrics.jsonl --worker_count=2]

Images are stored as img2dataset writes them: JPEG quality 95, at each --sizes entry (224 and
256 are img2dataset's square `--resize_mode center_crop/border` outputs, 320x400 a larger
mixed-aspect one: heights 320, widths 320-480). Their content is a smooth colour field plus
fine texture, compressing to about 25 KB at 256 px, like LAION's 256-px shards. One pipeline
thread runs configs/clip.py's recipe: random-resized crop (area 0.9-1) to 224, uint8 out,
CLIP BPE tokens of a caption, batches of 256, the median of 3 pipelines. Per core = examples per second of this process's
CPU time (so a busy machine does not deflate it); wall-clock examples/s are reported too.

The reference is the examples/s the digits quick start consumes (median step time over its
steps after the first 20, from its metrics.jsonl); without --reference_metrics the script runs
that job first, in a temporary workdir (about a minute). The webdataset rows also give the wall
rate with --worker_count grain processes (default: one per core). Writes results/data_throughput.{json,md}.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from contrastive.data import (clip_bpe, csv_source, image_text, pipeline,  # noqa: E402
                              prepare, webdataset_source)
from experiments.benchlib import RESULTS  # noqa: E402

BATCH = 256  # the digits job's batch
WORDS = ("a photo of the small large red blue green dog cat car tree house on in with at street "
         "beach mountain city night sunset vintage poster print close-up portrait woman man "
         "child playing running standing white black old new wooden table kitchen garden river "
         "boat bridge sky cloud snow 2019 stock image illustration vector").split()


def photo(i: int, height: int, width: int) -> Image.Image:
    """A smooth random colour field plus fine texture (compresses like a photo)."""
    rng = np.random.default_rng(i)
    def upsampled(shape, resample):
        small = Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
        return np.asarray(small.resize((width, height), resample), np.float32)
    field = upsampled((6, 6), Image.BICUBIC)
    texture = upsampled((height // 2, width // 2), Image.BILINEAR) - 127.5
    return Image.fromarray(np.clip(field + 0.16 * texture, 0, 255).astype(np.uint8))


def caption(i: int) -> str:
    rng = np.random.default_rng([i, 1])
    return " ".join(rng.choice(WORDS, rng.integers(5, 15)))


def write_csv(directory: Path, count: int, height: int, widths: list[int]) -> Path:
    (directory / "images").mkdir(parents=True)
    lines = ["filepath,title"]
    for i in range(count):
        photo(i, height, widths[i % len(widths)]).save(directory / f"images/{i:05d}.jpg",
                                                       quality=95)
        lines.append(f'images/{i:05d}.jpg,"{caption(i)}"')
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
                              "captions": {"text": [caption(i)]}}

        WebImages(data_dir=str(directory)).download_and_prepare(file_format="array_record")
    from contrastive.data import tfds_source as tfds_lib
    return tfds_lib.load_split("web_images", "train", str(directory))


def examples_per_second(source, batches: int, repeats: int = 3,
                        worker_count: int = 0) -> tuple[float, float]:
    """Median over `repeats` fresh pipelines of (examples/s of this process's CPU time, of wall
    time); with worker processes only the wall figure means anything."""
    measured = []
    for _ in range(repeats):
        transform = image_text.AugmentedImageTextExample(
            clip_bpe.ClipTokenizer(max_len=77), image_text.ImageTextAugment(224, "random_resized"))
        iterator = pipeline.make_iterator(source, transform, global_batch_size=BATCH, seed=0,
                                          num_threads=1, worker_count=worker_count)
        for _ in range(2 if worker_count else 1):  # warm-up (workers start on the first)
            next(iterator)
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(iterator)
        count = batches * BATCH
        measured.append((count / (time.process_time() - cpu_start),
                         count / (time.perf_counter() - start)))
        iterator.close()
    return tuple(statistics.median(column) for column in zip(*measured))


def decode_only_per_core(image_dir: Path) -> float:
    """JPEGs/s of CPU time for the decode alone (libjpeg-turbo): the pipeline's floor."""
    from contrastive.data import decode

    encoded = [p.read_bytes() for p in sorted(image_dir.iterdir())]
    start = time.process_time()
    for data in encoded:
        decode.decode_image(data)
    return len(encoded) / (time.process_time() - start)


def digits_job_rate(metrics_path: str | None) -> tuple[float, str]:
    """Examples/s the digits main job consumes: batch / median step time after step 20."""
    if metrics_path is None:
        with tempfile.TemporaryDirectory() as workdir:
            subprocess.run([sys.executable, "-m", "contrastive.main",
                            "--config=configs/digits_clip.py", f"--workdir={workdir}"],
                           cwd=ROOT, check=True, capture_output=True)
            return digits_job_rate(os.path.join(workdir, "metrics.jsonl"))[0], "a fresh run"
    with open(metrics_path) as f:
        rows = [json.loads(line) for line in f]
    step_time = statistics.median(r["step_time_s"] for r in rows if r["step"] > 20)
    return BATCH / step_time, metrics_path


def parse_size(text: str) -> tuple[int, list[int]]:
    """"256" -> (256, [256]); "320x400" -> height 320, widths 320..480 around 400 (mixed)."""
    if "x" not in text:
        return int(text), [int(text)]
    height, width = map(int, text.split("x"))
    return height, [height, width, 2 * width - height]


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--sizes", default="224,256,320x400")
    parser.add_argument("--reference_metrics", default=None)
    parser.add_argument("--worker_count", type=int, default=os.cpu_count(),
                        help="also: webdataset wall examples/s with this many grain workers")
    args = parser.parse_args(argv[1:])
    reference, reference_from = digits_job_rate(args.reference_metrics)
    rows = []
    for size in args.sizes.split(","):
        height, widths = parse_size(size)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            csv_path = write_csv(tmp / "csv", args.images, height, widths)
            kilobytes = np.mean([p.stat().st_size for p in (tmp / "csv/images").iterdir()]) / 1024
            decode_alone = decode_only_per_core(tmp / "csv/images")
            shards = prepare.csv_to_webdataset(str(csv_path), str(tmp / "shards"),
                                               shard_size=512)
            found = {
                "webdataset": webdataset_source.WebDatasetSource(shards["pattern"]),
                "csv": csv_source.CsvSource(str(csv_path)),
                "tfds": tfds_source(tmp / "tfds", csv_path),
            }
            for name, source in found.items():
                per_core, wall = examples_per_second(source, args.batches)
                rows.append({"source": name, "stored": size, "kilobytes": round(float(kilobytes), 1),
                             "per_core": round(per_core, 1), "wall": round(wall, 1),
                             "ms_per_example": round(1000 / per_core, 3),
                             "decode_alone_per_core": round(decode_alone, 1),
                             "vs_digits_job": round(per_core / reference, 2)})
                if name == "webdataset" and args.worker_count:
                    rows[-1]["workers_wall"] = round(examples_per_second(
                        source, args.batches, worker_count=args.worker_count)[1], 1)
                print(rows[-1], flush=True)
    result = {"rows": rows, "digits_job_examples_per_second": round(reference, 1),
              "digits_job_metrics": reference_from, "batch": BATCH, "threads": 1,
              "worker_count": args.worker_count,
              "crop": "random_resized (0.9, 1.0) -> 224, uint8; CLIP BPE, 77 tokens",
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
              "command": "python experiments/data_throughput.py " + " ".join(sys.argv[1:])}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    table = ["| source | stored image | KB | examples/s per core | ms per example | x digits job "
             "| JPEG decode alone, /s per core |", "|---|---|---:|---:|---:|---:|---:|"]
    table += [f"| {r['source']} | {r['stored']} | {r['kilobytes']:.0f} | {r['per_core']:.0f} | "
              f"{r['ms_per_example']:.2f} | {r['vs_digits_job']:.2f} | "
              f"{r['decode_alone_per_core']:.0f} |" for r in rows]
    workers = "".join(
        f"\nWith data.worker_count={args.worker_count} (grain processes), webdataset at "
        f"{r['stored']}: {r['workers_wall']:.0f} examples/s wall." for r in rows if "workers_wall" in r)
    (RESULTS / "data_throughput.md").write_text(
        "Decoded + augmented examples/s, one pipeline thread: JPEG q95 -> random-resized crop "
        f"(0.9-1) to 224, uint8, CLIP BPE caption, batches of {BATCH}; `{result['command']}`, "
        f"load average {result['load_average']:.1f} on {os.cpu_count()} cores. The digits main "
        f"job consumed {reference:.0f} examples/s in the same run (x digits job = the ratio).\n\n"
        + "\n".join(table) + "\n" + workers)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    from absl import app, flags  # grain's worker processes read absl flags: parse them first

    app.run(main, flags_parser=lambda argv: (flags.FLAGS(argv[:1]), argv)[1])
