"""Streaming pre-training input: text files to packed PMLM batches.

Constant memory whatever the corpus size: the files are read line by line
(`tf.data.TextLineDataset`, gzip for `.gz`), one document per line, shuffled
through a bounded buffer, tokenized, and packed RoBERTa "full-sentences"
style: documents concatenated with `[SEP]` between them and cut into chunks
of at most `sequence_length - 2` tokens (the preprocessor adds `[CLS]` and
`[SEP]`) that never end inside a WordPiece word.
"""

import os

import tensorflow as tf

from keras_unilmv2.utils.checks import check_int


def _check_files(files):
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    files = [os.fspath(f) for f in files]
    if not files:
        raise ValueError("`files` must name at least one text file. Received: files=[]")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"`files` must be existing text files. Not found: {missing}")
    return sorted(files)


def _continuation_table(tokenizer):
    """A bool vector: `True` at the ids of word pieces that continue a word."""
    import numpy as np

    vocabulary = tokenizer.get_vocabulary()
    return np.array([token.startswith("##") for token in vocabulary], bool)


def pack_chunks(documents, continuation, sep_id, chunk_length):
    """Packs a stream of tokenized documents into chunks (a `tf.data` op).

    Args:
        documents: a `tf.data.Dataset` of int32 `[None]` token ids, one
            document each.
        continuation: bool `[vocabulary_size]`, `True` for `##` pieces.
        sep_id: int, the separator appended after every document.
        chunk_length: int, the most tokens in one chunk.

    Returns:
        A dataset of int32 `[None]` chunks: the documents concatenated (each
        followed by `sep_id`), cut greedily so that every chunk holds as many
        whole words as fit in `chunk_length` tokens. A single word longer
        than `chunk_length` is the only thing ever cut inside.
    """

    continuation = tf.constant(continuation)
    vocabulary_size = int(continuation.shape[0])

    def step(carry, ids):
        buffer = tf.concat([carry, ids, [sep_id]], axis=0)
        size = tf.shape(buffer)[0]
        in_vocabulary = tf.logical_and(buffer >= 0, buffer < vocabulary_size)
        is_continuation = tf.logical_and(
            in_vocabulary,
            tf.gather(continuation, tf.clip_by_value(buffer, 0, vocabulary_size - 1)),
        )
        # cut_ok[i]: a chunk may end just before slot i (i = size: the end).
        cut_ok = tf.concat([tf.logical_not(is_continuation), [True]], axis=0)
        cut_ok = tf.tensor_scatter_nd_update(cut_ok, [[0]], [False])
        index = tf.range(size + 1)

        def cond(start, ends):
            return size - start >= chunk_length

        def body(start, ends):
            window = tf.logical_and(
                cut_ok, tf.logical_and(index > start, index <= start + chunk_length)
            )
            best = tf.reduce_max(tf.where(window, index, -1))
            end = tf.where(best > start, best, start + chunk_length)  # a too-long word
            return end, ends.write(ends.size(), end)

        start, ends = tf.while_loop(
            cond,
            body,
            (tf.constant(0), tf.TensorArray(tf.int32, size=0, dynamic_size=True)),
        )
        ends = ends.stack()
        starts = tf.concat([[0], ends[:-1]], axis=0)[: tf.shape(ends)[0]]
        lengths = ends - starts
        chunks = tf.RaggedTensor.from_row_lengths(buffer[:start], lengths)
        return buffer[start:], chunks

    packed = documents.scan(tf.zeros([0], tf.int32), step)
    return packed.flat_map(tf.data.Dataset.from_tensor_slices)


def streaming_dataset(
    files,
    tokenizer,
    sequence_length,
    batch_size,
    seed,
    num_shards=1,
    shard_index=0,
    shuffle_buffer=10000,
    preprocessor=None,
    skip_batches=0,
    repeat=True,
    exclude_lines=None,
):
    """PMLM training batches streamed from text files (one document a line).

    1. The files (sorted, so the order does not depend on how they were
       listed) are split over `num_shards` processes: shard `shard_index`
       reads every `num_shards`-th file when there are at least
       `num_shards` files, else every `num_shards`-th line of them.
       `.gz` files are read through gzip (plain files first, then the
       gzipped ones).
    2. Lines (documents; blank lines and lines in `exclude_lines` are
       skipped) pass a shuffle buffer of
       `shuffle_buffer` documents (seeded; a new order every pass).
    3. Tokenized documents are packed: concatenated with `[SEP]` after each,
       cut into chunks of at most `sequence_length - 2` tokens that end
       between WordPiece words (`pack_chunks`).
    4. Chunks are batched (`batch_size`, full batches only) and mapped
       through `preprocessor` (default: `UniLMv2PMLMPreprocessor(tokenizer,
       sequence_length, seed=seed)`).

    Memory is bounded by the shuffle buffer and one document, whatever the
    corpus size. The stream is a function of `(files, seed, shard)` alone,
    so a run interrupted after `b` batches resumes exactly with
    `skip_batches=b` (the skipped batches are read and dropped, not
    trained on).

    Args:
        files: a path or a list of paths of text files (`.gz` allowed).
        tokenizer: a `UniLMv2Tokenizer` (or a WordPiece tokenizer with
            `get_vocabulary()` and `sep_token_id`).
        sequence_length: int >= 3, the packed length N.
        batch_size: int >= 1.
        seed: int, the shuffle (and default masking) seed.
        num_shards: int >= 1, the number of processes.
        shard_index: int in `[0, num_shards)`, this process.
        shuffle_buffer: int >= 1, documents held for shuffling (1: no
            shuffling, file order).
        preprocessor: a callable on a batch of ragged token ids, or `None`
            for the default PMLM preprocessor.
        skip_batches: int >= 0, batches to skip (resume position).
        repeat: bool, loop over the files forever (each pass reshuffled).
        exclude_lines: `None` or a collection of strings: lines equal to one
            of them (both stripped of surrounding white space) are dropped,
            e.g. held-out documents. Held in a hash table (memory grows with
            its size, not the corpus').

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)` batches.

    Example:
    ```python
    ds = streaming_dataset(
        ["shard-000.txt.gz", "shard-001.txt.gz"], tokenizer,
        sequence_length=512, batch_size=32, seed=0,
        num_shards=jax.process_count(), shard_index=jax.process_index(),
    )
    pmlm.fit(ds, steps_per_epoch=1000)
    ```
    """

    files = _check_files(files)
    sequence_length = check_int("sequence_length", sequence_length, 3)
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, -(2**63))
    num_shards = check_int("num_shards", num_shards, 1)
    shard_index = check_int("shard_index", shard_index, 0)
    if shard_index >= num_shards:
        raise ValueError(
            f"`shard_index` must be in [0, num_shards) = [0, {num_shards}). "
            f"Received: shard_index={shard_index}"
        )
    shuffle_buffer = check_int("shuffle_buffer", shuffle_buffer, 1)
    skip_batches = check_int("skip_batches", skip_batches, 0)
    if not isinstance(repeat, bool):
        raise ValueError(f"`repeat` must be a bool. Received: repeat={repeat!r}")
    if exclude_lines is not None:
        if isinstance(exclude_lines, (str, bytes)) or not all(
            isinstance(line, str) for line in exclude_lines
        ):
            raise ValueError(
                "`exclude_lines` must be `None` or a collection of strings. "
                f"Received: exclude_lines={exclude_lines!r:.200}"
            )
        exclude_lines = sorted({line.strip() for line in exclude_lines})
    sep_id = getattr(tokenizer, "sep_token_id", None)
    if sep_id is None or not hasattr(tokenizer, "get_vocabulary"):
        raise ValueError(
            "`tokenizer` must be a WordPiece tokenizer with a vocabulary and "
            f"`sep_token_id`. Received: tokenizer={tokenizer!r}"
        )
    if preprocessor is None:
        from keras_unilmv2.models.unilmv2_pmlm_preprocessor import (
            UniLMv2PMLMPreprocessor,
        )

        preprocessor = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=sequence_length, seed=seed)

    shard_files = len(files) >= num_shards
    if shard_files:
        files = files[shard_index::num_shards]
    plain = [f for f in files if not f.endswith(".gz")]
    gzipped = [f for f in files if f.endswith(".gz")]
    parts = []
    if plain:
        parts.append(tf.data.TextLineDataset(plain))
    if gzipped:
        parts.append(tf.data.TextLineDataset(gzipped, compression_type="GZIP"))
    lines = parts[0] if len(parts) == 1 else parts[0].concatenate(parts[1])
    if not shard_files:
        lines = lines.shard(num_shards, shard_index)
    lines = lines.filter(lambda line: tf.strings.length(tf.strings.strip(line)) > 0)
    if exclude_lines:
        excluded = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(exclude_lines), tf.ones([len(exclude_lines)], tf.int32)
            ),
            default_value=0,
        )
        lines = lines.filter(lambda line: excluded.lookup(tf.strings.strip(line)) == 0)
    if repeat:
        lines = lines.repeat()
    if shuffle_buffer > 1:
        # The passes are inside the shuffle (`repeat` first), so each pass
        # is ordered differently; a fixed order per *iterator* makes the
        # stream the same however often it is iterated (Keras re-creates
        # the iterator after peeking a batch to build a model).
        lines = lines.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    documents = lines.map(lambda line: tf.cast(tokenizer(line), tf.int32))
    chunks = pack_chunks(documents, _continuation_table(tokenizer), int(sep_id), sequence_length - 2)
    batches = chunks.ragged_batch(batch_size, drop_remainder=True)
    batches = batches.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.skip(skip_batches).prefetch(tf.data.AUTOTUNE)
