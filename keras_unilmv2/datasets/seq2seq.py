"""s2s-ft data files -> `tf.data` datasets for `UniLMv2Seq2SeqLM`."""

import json
import os

from keras_unilmv2.datasets.common import dataset_from_columns


def _text(value, path, line, key):
    # s2s-ft also stores pre-tokenized fields as lists of tokens.
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    if isinstance(value, str):
        return value
    raise ValueError(
        f"{path}, line {line}: {key!r} must be a string or a list of strings. "
        f"Received: {value!r}"
    )


def _read_jsonl(path, with_target):
    sources, targets = [], []
    with open(path, encoding="utf-8") as f:
        for line, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {line}: not valid JSON ({e.msg}).") from None
            if not isinstance(record, dict) or "src" not in record:
                raise ValueError(
                    f'{path}, line {line}: expected an object with "src" (and "tgt"). '
                    f"Received: {raw.strip()[:200]!r}"
                )
            sources.append(_text(record["src"], path, line, "src"))
            if with_target:
                if "tgt" not in record:
                    raise ValueError(f'{path}, line {line}: the record has no "tgt".')
                targets.append(_text(record["tgt"], path, line, "tgt"))
    return sources, targets


def _read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def read_seq2seq(path, target_path=None, with_target=True):
    """Reads s2s-ft data: a JSONL file or a `.src` + `.tgt` pair.

    Args:
        path: a `.json`/`.jsonl` file with one `{"src": ..., "tgt": ...}`
            object per line (strings, or lists of tokens joined with
            spaces), or a `.src` file with one source per line.
        target_path: the `.tgt` file aligned line by line with `path`.
            Defaults to `path` with `.src` replaced by `.tgt` when that
            file exists and `with_target` is True.
        with_target: bool, read targets (`False` for decoding: only `src`).

    Returns:
        `(sources, targets)`, lists of strings (`targets` is `None`
        without targets).

    Example:
    ```python
    sources, targets = keras_unilmv2.datasets.read_seq2seq("cnndm/dev.src")
    ```
    """
    if not os.path.isfile(path):
        raise ValueError(f"Sequence-to-sequence file not found: {path}")
    if path.endswith(".src") or target_path is not None:
        sources = _read_lines(path)
        for line, text in enumerate(sources, 1):
            if not text.strip():
                raise ValueError(f"{path}, line {line}: empty source line.")
        if not with_target:
            return sources, None
        if target_path is None:
            target_path = path[: -len(".src")] + ".tgt" if path.endswith(".src") else None
        if target_path is None or not os.path.isfile(target_path):
            raise ValueError(
                f"No target file for {path}: expected {target_path!r} (one target "
                "per line), or pass `with_target=False` to read sources only."
            )
        targets = _read_lines(target_path)
        if len(targets) != len(sources):
            raise ValueError(
                f"{path} has {len(sources)} lines but {target_path} has "
                f"{len(targets)}; the files must be aligned line by line."
            )
        for line, text in enumerate(targets, 1):
            if not text.strip():
                raise ValueError(f"{target_path}, line {line}: empty target line.")
        return sources, targets
    sources, targets = _read_jsonl(path, with_target)
    return sources, (targets if with_target else None)


def load_seq2seq(path, target_path=None, with_target=True):
    """s2s-ft data as a `tf.data.Dataset` for `UniLMv2Seq2SeqLM`.

    With targets, elements are `{"encoder_text": source, "decoder_text":
    target}` (what `fit` takes); without, plain source strings (what
    `generate` takes). Unbatched: batch it first.

    Args: as `read_seq2seq`.

    Example:
    ```python
    train = keras_unilmv2.datasets.load_seq2seq("cnndm/train.jsonl")
    seq2seq.fit(train.shuffle(10_000).batch(32), epochs=1)
    sources = keras_unilmv2.datasets.load_seq2seq(
        "cnndm/test.src", with_target=False)
    summaries = seq2seq.generate(sources.batch(64), max_length=128)
    ```
    """
    sources, targets = read_seq2seq(path, target_path, with_target)
    if targets is None:
        return dataset_from_columns(sources)
    return dataset_from_columns({"encoder_text": sources, "decoder_text": targets})
