"""Input pipeline throughput on the digits default: `python -m contrastive.data.benchmark`.

Builds the default dataset in a fresh temporary directory (timing the build), then measures
examples/s of the image-text and the two-view (SimCLR) pipelines in this process. Prints JSON.
"""
import json
import os
import tempfile
import time

from contrastive.data import augment, digits, examples, pipeline


def examples_per_second(iterator, global_batch_size: int, num_batches: int, warmup: int = 2):
    """Steady-state examples/s of `iterator` (after `warmup` batches)."""
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        next(iterator)
    return num_batches * global_batch_size / (time.perf_counter() - start)


def run(global_batch_size: int = 256, num_batches: int = 40, num_threads: int = 2) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        start = time.perf_counter()
        source = digits.load_split("train", data_dir)
        build_seconds = time.perf_counter() - start
        tokenizer = digits.caption_tokenizer(max_len=16)
        transforms = {
            "image_text": examples.ImageTextExample(tokenizer),
            "two_views": examples.TwoViewExample(augment.SimCLRAugment(size=8, blur_probability=0)),
        }
        throughput = {}
        for name, transform in transforms.items():
            iterator = pipeline.make_iterator(
                source, transform, global_batch_size=global_batch_size, seed=0,
                num_threads=num_threads,
            )
            throughput[name] = round(examples_per_second(iterator, global_batch_size, num_batches))
            iterator.close()
    return {
        "digits_build_seconds": round(build_seconds, 2),
        "examples_per_second": throughput,
        "global_batch_size": global_batch_size,
        "num_threads": num_threads,
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
