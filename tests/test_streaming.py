"""Streaming pre-training input: files, gzip, packing, shards, resume."""

import gzip

import keras
import numpy as np
import pytest
import tensorflow as tf
from unilmv2_test_utils import fixture_path

from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.pretraining.streaming import pack_chunks
from keras_unilmv2.pretraining.streaming import streaming_dataset

WORDS = "the cat sat on mat and dog ran to park two birds flew over old house at night".split()


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


def _documents(count, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 15)))) for _ in range(count)]


@pytest.fixture()
def corpus(tmp_path):
    docs = _documents(60)
    paths = []
    for i in range(3):
        part = docs[i * 20 : (i + 1) * 20]
        text = "\n".join(part[:10]) + "\n\n" + "\n".join(part[10:]) + "\n"
        if i == 2:
            path = tmp_path / f"part{i}.txt.gz"
            with gzip.open(path, "wt") as f:
                f.write(text)
        else:
            path = tmp_path / f"part{i}.txt"
            path.write_text(text)
        paths.append(str(path))
    return paths, docs


def _ids(structure):
    return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), structure)


def test_pack_chunks_never_cuts_inside_a_word():
    # Vocabulary: ids 0..9 words, 10..12 "##" pieces; 99 = [SEP].
    continuation = np.array([False] * 10 + [True] * 3 + [False] * 90)
    docs = [[1, 10, 11, 2, 3, 12], [4, 5, 10, 10, 10], [6, 7]]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(docs), output_signature=tf.TensorSpec([None], tf.int32)
    )
    chunks = [list(c.numpy()) for c in pack_chunks(ds, continuation, 99, 4)]
    stream = [t for d in docs for t in d + [99]]
    flat = [t for c in chunks for t in c]
    # In order, nothing lost except the incomplete tail (< 4 tokens).
    assert flat == stream[: len(flat)] and len(stream) - len(flat) < 4
    for c in chunks:
        assert 1 <= len(c) <= 4
    # No chunk boundary sits before a continuation piece.
    boundaries = np.cumsum([len(c) for c in chunks])[:-1]
    assert len(boundaries) == 3
    for b in boundaries:
        assert not continuation[stream[b]], (chunks, b)
    assert chunks == [[1, 10, 11, 2], [3, 12, 99, 4], [5, 10, 10, 10], [99, 6, 7, 99]]
    # A word longer than a chunk is the only thing cut inside.
    long_word = tf.data.Dataset.from_tensors(tf.constant([8, 10, 10, 10, 10, 10], tf.int32))
    assert [list(c.numpy()) for c in pack_chunks(long_word, continuation, 99, 4)] == [
        [8, 10, 10, 10]
    ]


def test_stream_reads_plain_and_gzip_in_order(corpus, tokenizer):
    paths, docs = corpus
    ds = streaming_dataset(
        paths, tokenizer, sequence_length=16, batch_size=2, seed=0, shuffle_buffer=1, repeat=False
    )
    token_stream = []
    sep = tokenizer.sep_token_id
    for doc in docs:
        token_stream.extend([int(i) for i in np.asarray(tokenizer(doc))] + [sep])
    seen = []
    for x, y, w in ds:
        x, y, w = _ids((x, y, w))
        # The original chunk: context slots with masked slots restored.
        context = x["token_ids"][:, :16].copy()
        for b in range(context.shape[0]):
            count = int(w["ae"][b].sum())
            context[b, x["mask_positions"][b][:count]] = y["ae"][b][:count]
            real = context[b][context[b] != 0]
            assert real[0] == tokenizer.cls_token_id and real[-1] == sep
            seen.extend(int(t) for t in real[1:-1])
    assert len(seen) > 0.8 * len(token_stream)
    assert seen == token_stream[: len(seen)]


def test_shards_are_disjoint_and_cover(corpus, tokenizer):
    paths, _ = corpus

    def chunks(num_shards, shard_index):
        ds = streaming_dataset(
            paths,
            tokenizer,
            sequence_length=12,
            batch_size=1,
            seed=0,
            num_shards=num_shards,
            shard_index=shard_index,
            shuffle_buffer=1,
            repeat=False,
            preprocessor=lambda ids: ids,
        )
        return [tuple(np.asarray(c.numpy()).ravel()) for c in ds]

    whole = chunks(1, 0)
    for num_shards in (2, 5):  # by file (2 <= 3 files) and by line (5 > 3)
        parts = [chunks(num_shards, i) for i in range(num_shards)]
        assert all(parts), num_shards
        tokens = sorted(t for part in parts for c in part for t in c)
        everything = sorted(t for c in whole for t in c)
        # Every token read exactly once up to the incomplete tails.
        assert len(everything) - len(tokens) < num_shards * 10
        assert parts[0] != parts[1]


def test_resume_skips_exactly_the_consumed_batches(corpus, tokenizer):
    paths, _ = corpus

    def run(skip):
        ds = streaming_dataset(
            paths, tokenizer, sequence_length=16, batch_size=3, seed=7, shuffle_buffer=8,
            skip_batches=skip,
        )
        return [_ids(element) for element in ds.take(6)]

    full, resumed, other = run(0), run(4), run(0)
    # Deterministic given the seed ...
    for a, b in zip(keras.tree.flatten(full), keras.tree.flatten(other)):
        np.testing.assert_array_equal(a, b)
    # ... and resuming after 4 batches continues with batch 4.
    for a, b in zip(keras.tree.flatten(full[4:]), keras.tree.flatten(resumed[:2])):
        np.testing.assert_array_equal(a, b)
    # Shuffling changes the order with the seed.
    shuffled = streaming_dataset(
        paths, tokenizer, sequence_length=16, batch_size=3, seed=8, shuffle_buffer=8
    )
    first = _ids(next(iter(shuffled)))
    assert not np.array_equal(first[0]["token_ids"], full[0][0]["token_ids"])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"files": []}, "files"),
        ({"files": ["/nonexistent/file.txt"]}, "files"),
        ({"sequence_length": 2}, "sequence_length"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_shards": 0}, "num_shards"),
        ({"num_shards": 2, "shard_index": 2}, "shard_index"),
        ({"shuffle_buffer": 0}, "shuffle_buffer"),
        ({"skip_batches": -1}, "skip_batches"),
        ({"repeat": "yes"}, "repeat"),
    ],
)
def test_bad_arguments(corpus, tokenizer, kwargs, name):
    args = dict(files=corpus[0], tokenizer=tokenizer, sequence_length=16, batch_size=2, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        streaming_dataset(**args)
