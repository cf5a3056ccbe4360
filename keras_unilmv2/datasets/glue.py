"""GLUE task TSV files -> `tf.data` datasets for `UniLMv2TextClassifier`."""

import csv
import dataclasses
import os
import sys

from keras_unilmv2.datasets.common import dataset_from_columns


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """The file layout and labels of one GLUE task.

    Attributes:
        name: the task name (`"cola"`, `"sst-2"`, ..., `"mnli-mm"`).
        text_columns: header names of the one or two text columns.
        label_column: header name of the label column (absent in test files).
        label_names: the label vocabulary, in class-id order; `None` for
            the regression task STS-B (float labels).
        splits: split name -> file name inside the task directory.
        metrics: the metrics GLUE reports for the task (see
            `keras_unilmv2.metrics.glue_metrics`).
        header: whether train/dev files have a header row (CoLA's do not:
            their columns are source, label, original label, sentence).
    """

    name: str
    text_columns: tuple
    label_column: str
    label_names: tuple
    splits: dict
    metrics: tuple
    header: bool = True

    @property
    def num_classes(self):
        """Classes of `UniLMv2TextClassifier` (1 for regression)."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_regression(self):
        return self.label_names is None


_SPLITS = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

GLUE_TASKS = {
    task.name: task
    for task in (
        GlueTask("cola", ("sentence",), "label", _BINARY, _SPLITS, ("matthews_corrcoef",), header=False),
        GlueTask("sst-2", ("sentence",), "label", _BINARY, _SPLITS, ("accuracy",)),
        GlueTask(
            "mrpc", ("#1 String", "#2 String"), "Quality", _BINARY, _SPLITS, ("accuracy", "f1")
        ),
        GlueTask(
            "qqp", ("question1", "question2"), "is_duplicate", _BINARY, _SPLITS, ("accuracy", "f1")
        ),
        GlueTask(
            "sts-b", ("sentence1", "sentence2"), "score", None, _SPLITS, ("pearson", "spearman")
        ),
        GlueTask(
            "mnli",
            ("sentence1", "sentence2"),
            "gold_label",
            ("contradiction", "entailment", "neutral"),
            {"train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"},
            ("accuracy",),
        ),
        GlueTask(
            "mnli-mm",
            ("sentence1", "sentence2"),
            "gold_label",
            ("contradiction", "entailment", "neutral"),
            {"train": "train.tsv", "dev": "dev_mismatched.tsv", "test": "test_mismatched.tsv"},
            ("accuracy",),
        ),
        GlueTask("qnli", ("question", "sentence"), "label", _NLI2, _SPLITS, ("accuracy",)),
        GlueTask("rte", ("sentence1", "sentence2"), "label", _NLI2, _SPLITS, ("accuracy",)),
        GlueTask("wnli", ("sentence1", "sentence2"), "label", _BINARY, _SPLITS, ("accuracy",)),
    )
}
_ALIASES = {"sst2": "sst-2", "stsb": "sts-b", "sts": "sts-b", "mnli-m": "mnli", "mnli_m": "mnli",
            "mnli_mm": "mnli-mm", "mnlimm": "mnli-mm"}
# CoLA's headerless train/dev columns.
_COLA_COLUMNS = ("source", "label", "original_label", "sentence")


def get_glue_task(name):
    """The `GlueTask` of a task name (case-insensitive; `"sst2"`, `"stsb"`
    and `"mnli-m"` are accepted too)."""
    if isinstance(name, GlueTask):
        return name
    if not isinstance(name, str):
        raise TypeError(f"`task` must be a GLUE task name. Received: task={name!r}")
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in GLUE_TASKS:
        raise ValueError(
            f"Unknown GLUE task {name!r}. Expected one of {sorted(GLUE_TASKS)}."
        )
    return GLUE_TASKS[key]


def _read_rows(path):
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8-sig", newline="") as f:
        # GLUE files are not quoted: quotes are text.
        yield from enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1)


def read_glue(task, path, split=None, skip_malformed=False):
    """Reads one GLUE TSV file into columns.

    Args:
        task: a task name (see `GLUE_TASKS`) or a `GlueTask`.
        path: the TSV file.
        split: `"train"`, `"dev"` or `"test"`; test files have no labels.
            Defaults to the split whose file name `path` has (e.g.
            `dev_matched.tsv` is `"dev"` for MNLI), else `"train"`.
        skip_malformed: bool. If `True`, rows with too few columns or a bad
            label are skipped (GLUE's QQP train file has a few); otherwise
            they raise a `ValueError` naming the file and line.

    Returns:
        A dict of lists: `"text"`, plus `"text_pair"` for sentence-pair
        tasks, `"label"` (class ids, or floats for STS-B; not for test
        files) and `"index"` (the row's `index`/`id` column, or its line
        number when the file has none).

    Example:
    ```python
    columns = keras_unilmv2.datasets.read_glue("rte", "glue/RTE/dev.tsv")
    columns["text"][0], columns["text_pair"][0], columns["label"][0]
    ```
    """
    spec = get_glue_task(task)
    if split is None:
        base = os.path.basename(str(path))
        split = next((s for s, f in spec.splits.items() if f == base), "train")
    if split not in ("train", "dev", "test"):
        raise ValueError(f"`split` must be 'train', 'dev' or 'test'. Received: split={split!r}")
    if not os.path.isfile(path):
        raise ValueError(f"GLUE {spec.name} {split} file not found: {path}")
    labelled = split != "test"
    rows = _read_rows(path)
    if spec.header or not labelled:
        try:
            _, header = next(rows)
        except StopIteration:
            raise ValueError(f"{path}: the file is empty; expected a header row.") from None
    else:
        header = list(_COLA_COLUMNS)
    wanted = list(spec.text_columns) + ([spec.label_column] if labelled else [])
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(
            f"{path}, line 1: the header has no column(s) {missing} needed for "
            f"GLUE {spec.name} {split} files. Header: {header}"
        )
    positions = [header.index(c) for c in wanted]
    id_position = next((header.index(c) for c in ("index", "id") if c in header), None)
    needed = max(positions + ([id_position] if id_position is not None else [])) + 1
    out = {"text": [], "index": []}
    if len(spec.text_columns) == 2:
        out["text_pair"] = []
    if labelled:
        out["label"] = []
    for line, row in rows:
        if not row or row == [""]:
            continue
        if len(row) < needed:
            if skip_malformed:
                continue
            raise ValueError(
                f"{path}, line {line}: expected at least {needed} tab-separated "
                f"columns for GLUE {spec.name}, found {len(row)}: {row!r}"
            )
        if labelled:
            raw = row[positions[-1]].strip()
            try:
                label = _parse_label(spec, raw)
            except ValueError as e:
                if skip_malformed:
                    continue
                raise ValueError(f"{path}, line {line}: {e}") from None
            out["label"].append(label)
        out["text"].append(row[positions[0]])
        if "text_pair" in out:
            out["text_pair"].append(row[positions[1]])
        out["index"].append(row[id_position] if id_position is not None else str(line))
    return out


def _parse_label(spec, raw):
    if spec.is_regression:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(
                f"the {spec.name} label must be a number. Received: {raw!r}"
            ) from None
    if raw not in spec.label_names:
        raise ValueError(
            f"unknown {spec.name} label {raw!r}; expected one of {list(spec.label_names)}"
        )
    return spec.label_names.index(raw)


def load_glue(task, data_dir, split="train", skip_malformed=False):
    """A GLUE split as a `tf.data.Dataset` for `UniLMv2TextClassifier`.

    Elements are `(text, label)` for single-sentence tasks (CoLA, SST-2)
    and `((text, text_pair), label)` for pair tasks, unbatched; test splits
    give the inputs alone. Labels are int32 class ids (float32 scores for
    STS-B, whose classifier has `num_classes=1`). Batch it and pass it to
    `fit`/`evaluate`/`predict`; the classifier's preprocessor tokenizes.

    Args:
        task: a task name or `GlueTask`; `"mnli-mm"` reads the mismatched
            dev/test files.
        data_dir: the task's directory (`train.tsv`, `dev.tsv`, ...) or a
            file path.
        split: `"train"`, `"dev"` or `"test"`.
        skip_malformed: see `read_glue`.

    Example:
    ```python
    task = keras_unilmv2.datasets.get_glue_task("mrpc")
    train = keras_unilmv2.datasets.load_glue("mrpc", "glue/MRPC", "train")
    classifier = keras_unilmv2.UniLMv2TextClassifier.from_preset(
        "unilmv2_tiny_en_uncased", num_classes=task.num_classes)
    classifier.fit(train.shuffle(10_000).batch(32), epochs=3)
    ```
    """
    spec = get_glue_task(task)
    if split not in spec.splits:
        raise ValueError(f"`split` must be 'train', 'dev' or 'test'. Received: split={split!r}")
    path = data_dir if os.path.isfile(data_dir) else os.path.join(data_dir, spec.splits[split])
    columns = read_glue(spec, path, split, skip_malformed=skip_malformed)
    texts = columns["text"]
    x = (texts, columns["text_pair"]) if "text_pair" in columns else texts
    if "label" not in columns:
        return dataset_from_columns(x)
    dtype = "float32" if spec.is_regression else "int32"
    return dataset_from_columns(x, columns["label"], label_dtype=dtype)
