"""Tiny tfds datasets with the feature structure of cifar10 and coco_captions (2017 config),
built locally into a tmp data_dir, so the real-dataset path runs end to end without download.

The builders are not registered: they are read back by name from their files, exactly as a
user's prepared cifar10 / coco_captions would be.
"""
import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

CIFAR_EXAMPLES = {"train": 40, "test": 12}
COCO_EXAMPLES = {"train": 24, "val": 8}
CAPTIONS_PER_IMAGE = 5
COLOURS = ("red", "green", "blue", "yellow")
THINGS = ("cat", "dog", "bus", "kite", "boat", "tree")

with tfds.core.registered.skip_registration():

    class Cifar10(tfds.core.GeneratorBasedBuilder):
        """Same features as tfds cifar10 3.0.2: id, 32x32x3 image, 10-class label."""

        VERSION = tfds.core.Version("3.0.2")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "id": tfds.features.Text(),
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {s: self._generate_examples(s, n) for s, n in CIFAR_EXAMPLES.items()}

        def _generate_examples(self, split, count):
            rng = np.random.default_rng(len(split))
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                yield f"{split}_{i}", {
                    "id": f"{split}_{i:05d}",
                    "image": PIL.Image.fromarray(pixels),
                    "label": i % 10,
                }

    class CocoCaptions(tfds.core.GeneratorBasedBuilder):
        """Same caption structure as tfds coco_captions: JPEG images of varying size, image/id,
        and several captions per image under captions/{id, text}."""

        VERSION = tfds.core.Version("1.1.0")
        BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="2017")]

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(encoding_format="jpeg"),
                    "image/id": tfds.features.Scalar(dtype=np.int64),
                    "captions": tfds.features.Sequence({
                        "id": tfds.features.Scalar(dtype=np.int64),
                        "text": tfds.features.Text(),
                    }),
                }),
            )

        def _split_generators(self, dl_manager):
            return {s: self._generate_examples(s, n) for s, n in COCO_EXAMPLES.items()}

        def _generate_examples(self, split, count):
            rng = np.random.default_rng(len(split) + 100)
            for i in range(count):
                height, width = rng.integers(20, 48, size=2)
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                image_id = 1000 * len(split) + i
                yield image_id, {
                    "image": PIL.Image.fromarray(pixels),
                    "image/id": image_id,
                    "captions": {
                        "id": [10 * image_id + k for k in range(CAPTIONS_PER_IMAGE)],
                        "text": [caption(i, k) for k in range(CAPTIONS_PER_IMAGE)],
                    },
                }


def caption(image_index: int, k: int) -> str:
    colour = COLOURS[(image_index + k) % len(COLOURS)]
    thing = THINGS[image_index % len(THINGS)]
    return f"A {colour} {thing} number {image_index} seen from view {k}."


def build(data_dir: str) -> None:
    """Prepares both tiny datasets as array_record in data_dir."""
    for builder in (Cifar10(data_dir=data_dir), CocoCaptions(data_dir=data_dir, config="2017")):
        builder.download_and_prepare(file_format="array_record")
