"""Data preparation from the command line.

  python -m contrastive.data.prepare --from=csv --input=train.csv --to=webdataset \
      --output=/data/shards [--image_column=filepath --caption_column=title --shard_size=10000]
  python -m contrastive.data.prepare --from=csv --input=train.csv --to=sentencepiece \
      --output=/data/spm.model --vocab_size=32000

webdataset: the CSV's image files are copied byte for byte (no re-encoding) into tar shards of
KEY.<ext> + KEY.txt, named 00000.tar, 00001.tar, ...; rows whose image file is missing or whose
caption is empty are skipped and counted. Prints the brace pattern for config.data.shards.
sentencepiece: `tokenizer.train_sentencepiece` on the CSV's captions (pad=0, unk=1, eos=2).
"""
import argparse
import csv
import io
import json
import os
import sys
import tarfile

from contrastive.data import csv_source, tokenizer


def _rows(path, image_column, caption_column, separator):
    csv_source.CsvSource(path, image_column, caption_column, separator)  # checks columns
    separator = separator or ("\t" if path.endswith(".tsv") else ",")
    root = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=separator):
            yield os.path.join(root, row[image_column] or ""), (row[caption_column] or "").strip()


def _add(tar, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def csv_to_webdataset(path, output_dir, image_column="filepath", caption_column="title",
                      separator=None, shard_size=10_000) -> dict:
    """Writes the shards; returns {"pattern", "records", "skipped", "shards"}."""
    os.makedirs(output_dir, exist_ok=True)
    records = skipped = shard = 0
    tar = None
    for image_path, caption in _rows(path, image_column, caption_column, separator):
        if not caption or not os.path.isfile(image_path):
            skipped += 1
            continue
        if records % shard_size == 0:
            if tar is not None:
                tar.close()
            tar = tarfile.open(os.path.join(output_dir, f"{records // shard_size:05d}.tar"), "w")
            shard = records // shard_size
        key = f"{records:09d}"
        extension = os.path.splitext(image_path)[1].lstrip(".").lower() or "jpg"
        with open(image_path, "rb") as f:
            _add(tar, f"{key}.{extension}", f.read())
        _add(tar, f"{key}.txt", caption.encode("utf-8"))
        records += 1
    if tar is not None:
        tar.close()
    if not records:
        raise ValueError(f"CSV {path}: no row has an existing image and a caption")
    pattern = os.path.join(os.path.abspath(output_dir), f"{{00000..{shard:05d}}}.tar")
    return {"pattern": pattern, "records": records, "skipped": skipped, "shards": shard + 1}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m contrastive.data.prepare",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", choices=["csv"], required=True)
    parser.add_argument("--to", choices=["webdataset", "sentencepiece"], required=True)
    parser.add_argument("--input", required=True, help="the CSV/TSV file")
    parser.add_argument("--output", required=True, help="shard directory or .model path")
    parser.add_argument("--image_column", default="filepath")
    parser.add_argument("--caption_column", default="title")
    parser.add_argument("--separator", default=None, help="default: tab for .tsv, else comma")
    parser.add_argument("--shard_size", type=int, default=10_000)
    parser.add_argument("--vocab_size", type=int, default=32_000)
    parser.add_argument("--model_type", default="unigram", choices=["unigram", "bpe"])
    args = parser.parse_args(argv)
    try:
        if args.to == "webdataset":
            result = csv_to_webdataset(args.input, args.output, args.image_column,
                                       args.caption_column, args.separator, args.shard_size)
        else:
            captions = [c for _, c in _rows(args.input, args.image_column, args.caption_column,
                                             args.separator) if c]
            proto = tokenizer.train_sentencepiece(captions, args.vocab_size, args.model_type)
            with open(args.output, "wb") as f:
                f.write(proto)
            result = {"model": args.output, "captions": len(captions)}
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
