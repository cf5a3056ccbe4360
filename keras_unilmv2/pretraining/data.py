"""Pre-training corpora: reading, held-out splits and in-memory datasets.

In-memory runs read every document (`read_texts`), hold out every
`heldout_every`-th one (`split_heldout`) and stream seeded passes over the
rest (`training_dataset`). Streaming runs (`--streaming`) list their files
with `streaming_files` and take the held-out documents and the vocabulary
sample from the first lines (`streaming_corpus`); the training stream
itself is `keras_unilmv2.pretraining.streaming.streaming_dataset`.
"""

import math
import os

import tensorflow as tf

from keras_unilmv2.utils.corpus import rst_paragraphs

TEXT_SUFFIXES = (".txt", ".text")


def _input_files(paths, suffixes):
    """Files given in `paths`, and the files ending in `suffixes` found
    recursively (in sorted order) in its folders; a `ValueError` for a path
    that does not exist or when nothing is found."""
    files = []
    for path in paths:
        path = os.path.expanduser(os.fspath(path))
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names) if n.endswith(suffixes)]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(f"`--input` path does not exist: {path!r}")
    if not files:
        raise ValueError(f"No text files found in {list(paths)!r}.")
    return files


def read_texts(paths, min_words=4, max_non_text=0.05):
    """Documents from files and folders, in a deterministic order.

    A `.rst.txt` file yields its prose paragraphs (see
    `keras_unilmv2.utils.corpus.rst_paragraphs`); any other text file one
    document per non-empty line. Folders are searched recursively for
    `*.txt` files, in sorted order.

    Files are read as UTF-8. A corpus that is mostly not text is refused
    with a `ValueError`: when more than `max_non_text` (default 5%) of its
    non-space characters are undecodable bytes or control characters (a
    binary file or another encoding), rather than training on noise.
    """
    files = _input_files(paths, TEXT_SUFFIXES)
    texts = []
    non_text, total, worst = 0, 0, (0.0, None)
    for name in files:
        with open(name, "rb") as f:
            raw = f.read()
        content = raw.decode("utf-8", errors="replace")
        bad = _count_non_text(content, raw)
        size = sum(1 for char in content if not char.isspace())
        non_text, total = non_text + bad, total + size
        if size and bad / size > worst[0]:
            worst = (bad / size, name)
        if name.endswith(".rst.txt"):
            texts += rst_paragraphs(content, min_words=min_words)
        else:
            texts += [
                line.strip()
                for line in content.splitlines()
                if len(line.split()) >= min_words
            ]
    if total and non_text / total > max_non_text:
        raise ValueError(
            "The input does not look like UTF-8 text: "
            f"{non_text / total:.0%} of its {total} non-space characters "
            "are undecodable bytes or control characters (the limit is "
            f"`max_non_text`={max_non_text:.0%}; the worst file is "
            f"{worst[1]!r}, {worst[0]:.0%}). Pass UTF-8 text files. "
            f"Received: paths={list(paths)!r}"
        )
    if not texts:
        raise ValueError(f"The input files hold no document of >= {min_words} words.")
    return texts


def _count_non_text(content, raw):
    """Characters of `content` (decoded from `raw` with replacement) that
    are not text: U+FFFD from undecodable bytes and control characters
    other than tab, newline and carriage return."""
    replaced = content.count("\ufffd") - raw.count("\ufffd".encode("utf-8"))
    controls = sum(
        1
        for char in content
        if (char < " " and char not in "\t\n\r") or "\x7f" <= char <= "\x9f"
    )
    return max(replaced, 0) + controls


def split_heldout(texts, every=50):
    """Every `every`-th document is held out (deterministic)."""
    train = [t for i, t in enumerate(texts) if i % every]
    heldout = [t for i, t in enumerate(texts) if not i % every]
    return train, heldout


def training_dataset(texts, make_preprocessor, batch_size, total_batches, seed, skip_batches=0):
    """The exact stream of pre-processed batches of a whole training run.

    Pass `p` over the data shuffles with `seed + p` and masks with a
    preprocessor seeded `seed + p`, so every batch is a function of
    `(texts, seed, batch index)` alone: a resumed run `skip_batches` the
    batches it already trained on and continues on exactly the same data.
    """

    per_pass = len(texts) // batch_size
    if per_pass < 1:
        raise ValueError(
            f"Need at least `batch_size` ({batch_size}) training documents; got {len(texts)}."
        )
    passes = math.ceil(total_batches / per_pass)
    dataset = None
    for p in range(passes):
        preprocessor = make_preprocessor(seed + p)
        part = (
            tf.data.Dataset.from_tensor_slices(texts)
            .shuffle(len(texts), seed=seed + p, reshuffle_each_iteration=False)
            .batch(batch_size, drop_remainder=True)
            .map(preprocessor, num_parallel_calls=1, deterministic=True)
        )
        dataset = part if dataset is None else dataset.concatenate(part)
    return dataset.take(total_batches).skip(skip_batches).prefetch(2)


def evaluation_dataset(texts, preprocessor, batch_size, drop_remainder=False):
    """The held-out batches, in order (the last one partial unless
    `drop_remainder`)."""

    return (
        tf.data.Dataset.from_tensor_slices(texts)
        .batch(batch_size, drop_remainder=drop_remainder)
        .map(preprocessor, num_parallel_calls=1, deterministic=True)
    )


def streaming_files(paths):
    """The text files a `--streaming` run reads: files as given, folders
    searched recursively for `*.txt`, `*.text` and `*.gz` files. `.rst.txt`
    files are refused (their documents are paragraphs, not lines)."""
    files = _input_files(paths, TEXT_SUFFIXES + (".gz",))
    rst = [f for f in files if f.endswith((".rst.txt", ".rst.txt.gz"))]
    if rst:
        raise ValueError(
            "`--streaming` reads one document per line; reStructuredText files "
            f"need paragraph parsing, which only the in-memory mode does: {rst[:3]}. "
            "Drop `--streaming` or convert them to one paragraph per line."
        )
    return sorted(files)


def _stream_lines(files):
    """Non-blank lines (stripped) of `files` in the order `streaming_dataset`
    reads them (sorted, plain files first, then gzipped), read lazily."""
    import gzip

    ordered = [f for f in files if not f.endswith(".gz")] + [f for f in files if f.endswith(".gz")]
    for name in ordered:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(name, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    yield line


def streaming_corpus(files, heldout_file, heldout_lines, vocab_sample_lines):
    """`(held-out texts, vocabulary sample)`: the held-out documents come from
    `heldout_file` or are the first `heldout_lines` lines; the sample is the
    next `vocab_sample_lines` lines that are not held out."""
    import itertools

    lines = _stream_lines(files)
    if heldout_file is not None:
        heldout = read_texts([heldout_file], min_words=1)
    else:
        heldout = list(itertools.islice(lines, heldout_lines))
    excluded = set(heldout)
    sample = list(itertools.islice((t for t in lines if t not in excluded), vocab_sample_lines))
    if not sample:
        raise ValueError(
            f"The input files {files[:3]} hold no training line after the "
            f"{len(heldout)} held-out ones."
        )
    return heldout, sample
