"""CSV/TSV of image paths and captions (OpenCLIP's --csv-img-key/--csv-caption-key layout) as a
random-access source. Relative image paths are relative to the CSV file's directory."""
import csv
import os

from contrastive.data import decode


class CsvSource:
    """len() rows; source[i] -> decoded record (decode.make_record). `separator` None picks
    a tab for .tsv files and a comma otherwise."""

    def __init__(self, path: str, image_column: str = "filepath", caption_column: str = "title",
                 separator: str | None = None):
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise ValueError(f"CSV file not found: {path}")
        if separator is None:
            separator = "\t" if path.endswith(".tsv") else ","
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter=separator)
            columns = reader.fieldnames or []
            for column in (image_column, caption_column):
                if column not in columns:
                    raise ValueError(f"CSV {path} has no column {column!r}; it has {columns}")
            rows = [(row[image_column], row[caption_column]) for row in reader]
        if not rows:
            raise ValueError(f"CSV {path} has no rows")
        self._root = os.path.dirname(os.path.abspath(path))
        self._images, self._captions = zip(*rows)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def stats(self) -> dict:
        return {}

    def __getitem__(self, index: int) -> dict:
        image_path = os.path.join(self._root, self._images[index] or "")
        key = self._images[index] or f"row {index}"
        try:
            with open(image_path, "rb") as f:
                image = f.read()
        except OSError:
            image = None
        return decode.make_record(image, self._captions[index], key)
