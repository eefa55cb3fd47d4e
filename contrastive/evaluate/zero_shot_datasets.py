"""Zero-shot classification on other labelled datasets than the training data, several in one
run (a clip_benchmark-style list), from config.eval.zero_shot_datasets: a tuple of dicts

    {"name": "cifar10",           # a tfds dataset (or "digits") in its data_dir
     "data_dir": "/data/tfds",    # None: tfds' default
     "split": "test", "image_size": 32, "max_examples": 10000,
     "templates": ("a photo of a {}.",) or "clip_imagenet",   # a shipped prompt set; the
                                                               # default: eval.templates
     "class_names": () or "clip_imagenet"}                   # (): the dataset's own

each reported as zero_shot/<name>[<split>]_top1 (and _top5). The prompt sets under assets/ are
facts (OpenAI's CLIP ImageNet class names and 80 templates, as OpenCLIP ships them).
"""
import functools
import json
from pathlib import Path

import numpy as np

from contrastive.data import from_config as data_lib
from contrastive.evaluate import zero_shot

ASSETS = Path(__file__).with_name("assets")
_FIELDS = {"name", "data_dir", "split", "image_size", "max_examples", "templates",
           "class_names"}


@functools.cache
def prompt_set(name: str) -> dict:
    """{"class_names": [...], "templates": [...]} of a shipped prompt set (assets/NAME.json)."""
    path = ASSETS / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in ASSETS.glob("*.json"))
        raise ValueError(f"no prompt set {name!r}; shipped: {', '.join(known)}")
    return json.loads(path.read_text())


def dataset_config(config, entry: dict):
    """`config` with data and eval fields set for one zero-shot dataset entry."""
    unknown = set(entry) - _FIELDS
    if "name" not in entry or unknown:
        raise ValueError(f"eval.zero_shot_datasets entry {dict(entry)}: needs 'name'; fields "
                         f"are {', '.join(sorted(_FIELDS))}"
                         + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
    c = config.copy_and_resolve_references()
    c.data.name = entry["name"]
    c.data.data_dir = entry.get("data_dir")
    c.data.eval_split = entry.get("split", "test")
    c.data.image_size = entry.get("image_size", config.data.image_size)
    from_set = lambda value, field: (prompt_set(value)[field] if isinstance(value, str)
                                     else tuple(value))
    c.eval.templates = from_set(entry.get("templates", config.eval.templates), "templates")
    c.eval.class_names = from_set(entry.get("class_names", ()), "class_names")
    return c


def make_steps(config, embed_images, embed_texts, tokenizer, class_prompts) -> list:
    """One evaluator step per entry: (state, _) -> {zero_shot/<name>[<split>]_top1, _top5}.
    class_prompts(config, labels) -> each class's prompts (the suite's)."""
    steps = []
    for entry in config.eval.get("zero_shot_datasets", ()):
        entry = dict(entry)
        c = dataset_config(config, entry)
        data = data_lib.load_eval_split(c, c.data.eval_split,
                                        entry.get("max_examples", config.eval.max_examples))
        prompts = class_prompts(c, data["labels"])
        key = f"zero_shot/{c.data.name}[{c.data.eval_split}]"
        steps.append(functools.partial(_step, key, data["images"], data["labels"], prompts,
                                       embed_images, embed_texts, tokenizer))
    return steps


def _step(key, images, labels, prompts, embed_images, embed_texts, tokenizer, state, _):
    weights = zero_shot.class_weights(
        lambda t: embed_texts(state.params, state.model_state, t), tokenizer, prompts)
    scores = zero_shot.zero_shot_scores(
        np.asarray(embed_images(state.params, state.model_state, images)), weights)
    out = {f"{key}_top1": zero_shot.top1_accuracy(scores, labels)}
    if len(prompts) > 5:
        out[f"{key}_top5"] = zero_shot.topk_accuracy(scores, labels, 5)
    return out
