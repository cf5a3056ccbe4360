"""Training and generation of `UniLMv2Seq2SeqLM` compute the same thing.

The training forward pass scores every target token at once: the s2s-ft
layout `[source | target | pseudo copies of target]` under the 3-D
pseudo-mask, read at the pseudo slots. Generation encodes the source once into
a key/value cache (`_build_cache`), then each step (`call_with_cache`) feeds
`[previous token, [MASK]]` and reads the `[MASK]`. The pseudo slot of target
token `t` sees the source, the true target tokens `< t` and itself; the
decoding `[MASK]` of step `t` sees the source, the tokens fed before it and
itself, with the same position ids (`n_s + t`), segment ids and relative
positions. So, with the tokens fed being the true target tokens (teacher
forcing through the cache), the decoding logits of step `t` must equal the
training logits at pseudo slot `t`, on every example of a padded batch whose
sources and targets have different lengths (short, padded, truncated), from
the first step to the final `[SEP]`. A mismatch here would mean that a model
learns one function and decodes with another.

The comparison runs on equal footing:

- No training noise: the preprocessor is built with `pseudo_keep_rate=0`,
  `pseudo_random_rate=0` (every pseudo slot is exactly `[MASK]`, no 80/10/10)
  and `target_mask_rate=0` (no target word drop, the visible target tokens
  are the true ones); the test checks both.
- No dropout: the training pass runs with `training=False`.
- The same LayerNorm epsilon on both paths. Microsoft's decoder hard-codes
  1e-5 where its training uses the config's value (1e-12), see
  `docs/unilmv2_spec.md` section 7.4. This library does not: both the
  training pass and `call_with_cache` use the one backbone's
  `layer_norm_epsilon` (1e-12 for the shipped preset); a user who wants the
  reference decoder's numbers builds the backbone with
  `layer_norm_epsilon=1e-5`, which then holds for both paths. The test runs
  with both values; the two values change the logits by about 1e-2, 100
  times the tolerance, so a path that ignored the backbone's epsilon would
  fail one of the two cases.
- float32, tolerance 1e-4 (measured: below 1e-5 on all three backends).

The other tests check `generate()` itself (greedy, compiled, with the cache
updated in place): its tokens are the argmax of the training logits for the
prefix it generated, with the preset's weights and (slow test) after a short
fine-tuning, where the model also generates its targets, not empty text.

Data: the shipped `unilmv2_tiny_en_uncased` preset on real docstrings from
`guides/data/docstrings_train.tsv` (body -> summary).
"""

import csv
import functools
import os

import keras
import numpy as np
import pytest

from keras_unilmv2 import UniLMv2Backbone
from keras_unilmv2 import UniLMv2Seq2SeqLM
from keras_unilmv2 import UniLMv2Seq2SeqLMPreprocessor

PRESET = "unilmv2_tiny_en_uncased"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATOL = 1e-4
S, T = 48, 16
# Rows of docstrings_train.tsv. Source pieces: 22, 42, 54 (cut to S - 2),
# 24; target pieces: 10, 20 (cut to T - 1), 3, 4. So the batch has padded
# and truncated sources and targets of four different lengths.
ROWS = (6, 0, 4, 35)


def _pairs():
    path = os.path.join(REPO, "guides", "data", "docstrings_train.tsv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [rows[i]["body"] for i in ROWS], [rows[i]["summary"] for i in ROWS]


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _compiled(fn):
    """`fn` compiled for the backend (XLA on JAX, a graph on TensorFlow, no
    autograd on torch): op-by-op eager decoding steps are slow on a CPU."""
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    import torch

    def run(*args):
        with torch.no_grad():
            return fn(*args)

    return run


def _preprocessor():
    """s2s-ft layout without noise: pseudo slots `[MASK]`, true targets."""
    return UniLMv2Seq2SeqLMPreprocessor.from_preset(
        PRESET,
        encoder_sequence_length=S,
        decoder_sequence_length=T,
        pseudo_keep_rate=0.0,
        pseudo_random_rate=0.0,
        target_mask_rate=0.0,
    )


@functools.lru_cache(maxsize=None)
def _task(layer_norm_epsilon=None):
    kwargs = {}
    if layer_norm_epsilon is not None:
        kwargs["layer_norm_epsilon"] = layer_norm_epsilon
    backbone = UniLMv2Backbone.from_preset(PRESET, **kwargs)
    expected = 1e-12 if layer_norm_epsilon is None else layer_norm_epsilon
    assert backbone.layer_norm_epsilon == expected
    return UniLMv2Seq2SeqLM(backbone, preprocessor=_preprocessor())


def _training_logits(task, sources, targets):
    """The training pass (dropout off): `(x, labels, real, logits [B, T, V])`."""
    x, labels, weights = task.preprocessor(
        {"encoder_text": sources, "decoder_text": targets}
    )
    x = {k: _numpy(v) for k, v in x.items()}
    logits = _numpy(task(x, training=False))
    return x, _numpy(labels), _numpy(weights) > 0, logits


@functools.lru_cache(maxsize=None)
def _decoder(task, max_length):
    """`_build_cache` and `call_with_cache`, compiled once per task."""
    build = _compiled(lambda ids, mask: task._build_cache(ids, mask, max_length))
    return build, _compiled(task.call_with_cache)


def _teacher_forced_step_logits(task, sources, previous_tokens, max_length):
    """Cached decoding through `call_with_cache`, teacher-forced: the step
    that predicts target token `t` (0-based) has the prefix
    `previous_tokens[:, :t]` (it feeds `previous_tokens[:, t - 1]`, or the
    dummy slot 0 for `t = 0`, and `[MASK]`). The cache is built for
    `max_length` target tokens, as `generate(..., max_length)` does; one step
    runs per column of `previous_tokens`. Returns the encoder ids and the step
    logits `[B, steps, V]`."""
    steps = previous_tokens.shape[1]
    inputs = task.preprocessor.generate_preprocess(sources, sequence_length=max_length)
    build, step = _decoder(task, max_length)
    context, cache = build(
        keras.ops.convert_to_tensor(_numpy(inputs["encoder_token_ids"])),
        keras.ops.convert_to_tensor(_numpy(inputs["encoder_padding_mask"])),
    )
    # Slot 0 is the never-visible dummy; slot t holds target token t - 1.
    prompt = np.zeros((len(sources), max_length + 1), "int32")
    prompt[:, 1 : steps + 1] = previous_tokens
    prompt = keras.ops.convert_to_tensor(prompt)
    all_logits = []
    for index in range(1, steps + 1):
        logits, _, cache = step(
            prompt, cache, keras.ops.convert_to_tensor(index, "int32"), context
        )
        all_logits.append(_numpy(logits))
    return _numpy(inputs["encoder_token_ids"]), np.stack(all_logits, axis=1)


@pytest.mark.parametrize(
    "layer_norm_epsilon, max_length",
    [(None, T), (1e-5, T + 5)],
    ids=["preset_eps-max_length_T", "eps_1e-5-max_length_T+5"],
)
def test_teacher_forced_decoding_equals_training_logits(layer_norm_epsilon, max_length):
    """Decoding logits = training logits at the pseudo slots, teacher-forced.
    The second case also decodes with a longer `max_length` than the
    training target length (more, never-visible, cache slots)."""
    task = _task(layer_norm_epsilon)
    sources, targets = _pairs()
    x, labels, real, train_logits = _training_logits(task, sources, targets)
    mask_id = task.preprocessor.tokenizer.mask_token_id
    num_target = real.sum(axis=1)
    num_source = (x["token_ids"][:, :S] != 0).sum(axis=1)
    # The batch is what it should be: lengths differ, some padded, some cut.
    assert x["attention_mask"].shape == (len(sources), S + 2 * T, S + 2 * T)
    assert len(set(num_source.tolist())) == len(sources) and num_source.max() == S
    assert len(set(num_target.tolist())) == len(sources) and num_target.max() == T
    assert num_target.min() < T and num_source.min() < S
    # No noise: true target tokens, exactly `[MASK]` on every pseudo slot.
    np.testing.assert_array_equal(x["token_ids"][:, S : S + T], labels)
    pseudo = x["token_ids"][:, S + T :]
    np.testing.assert_array_equal(pseudo[real], mask_id)
    np.testing.assert_array_equal(x["pseudo_positions"][0], np.arange(S + T, S + 2 * T))

    encoder_ids, step_logits = _teacher_forced_step_logits(task, sources, labels, max_length)
    # Generation tokenizes and packs the source as training does.
    np.testing.assert_array_equal(encoder_ids, x["token_ids"][:, :S])
    diff = np.abs(step_logits - train_logits).max(axis=-1)  # [B, T]
    # Every real target slot, from the first step to the final [SEP].
    assert diff[real].max() <= ATOL, (
        f"max |decoding - training| logits = {diff[real].max():.3g} "
        f"(per example and step:\n{np.where(real, diff, 0.0)})"
    )
    # The logits depend on the prefix, so the comparison is not vacuous:
    # a wrong previous token (the gold one shifted by one slot) moves them.
    shifted = np.roll(labels, 1, axis=1)
    _, wrong_logits = _teacher_forced_step_logits(task, sources, shifted, max_length)
    wrong = np.abs(wrong_logits - train_logits).max(axis=-1)
    later = real.copy()
    later[:, 0] = False  # step 1's prefix is empty either way
    assert wrong[later].min() > 100 * ATOL
    np.testing.assert_allclose(wrong[:, 0], diff[:, 0], atol=ATOL)


def _generate_ids(task, sources):
    """The task's compiled greedy generation, all `T` tokens (no stop)."""
    inputs = task.preprocessor.generate_preprocess(sources, sequence_length=T)
    inputs = {k: keras.ops.convert_to_tensor(_numpy(v)) for k, v in inputs.items()}
    outputs = task.make_generate_function()(inputs, stop_token_ids=None)
    return _numpy(outputs["decoder_token_ids"])[:, 1:]  # [B, T]


def _assert_generate_is_argmax(task, sources):
    """`generate()`'s greedy tokens, fed back as the target of the training
    pass, are the argmax of its logits at every pseudo slot; returns them."""
    generated = _generate_ids(task, sources)
    # As the target: T - 1 tokens plus the preprocessor's final [SEP]; pseudo
    # slot t sees only target tokens < t, so all T slots have the generated
    # prefix.
    targets = [[int(t) for t in row[: T - 1]] for row in generated]
    _, labels, real, train_logits = _training_logits(task, sources, targets)
    assert real.all()
    np.testing.assert_array_equal(labels[:, : T - 1], generated[:, : T - 1])
    # The generated token is an argmax up to float noise ...
    chosen = np.take_along_axis(train_logits, generated[..., None], axis=-1)[..., 0]
    assert (train_logits.max(axis=-1) - chosen).max() <= ATOL
    # ... and exactly the argmax wherever the top two logits are not a tie.
    top2 = np.sort(train_logits, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 2 * ATOL
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(train_logits.argmax(-1)[clear], generated[clear])
    return generated


def test_greedy_generate_is_argmax_of_training_logits():
    """`generate()` (greedy, compiled, cache updated in place) decodes what
    the training pass scores (with the preset's epsilon; the other case adds
    nothing the test above does not check, and compiling generation is the
    slow part)."""
    task = _task()
    sources, _ = _pairs()
    task.compile(sampler="greedy")
    generated = _assert_generate_is_argmax(task, sources)
    # The public `generate()` gives the same text (cut at the first [SEP]).
    texts = task.generate(sources, max_length=T, stop_token_ids=None)
    expected = task.preprocessor.generate_postprocess(
        {"decoder_token_ids": np.pad(generated, ((0, 0), (1, 0)))}
    )
    assert texts == expected


@pytest.mark.slow
def test_after_fine_tuning_generation_still_matches_training():
    """After `fit()` the two paths still agree (generation reads the new
    weights, also through a generate function compiled before `fit`), and
    the fine-tuned model generates its (memorized) targets, not empty
    outputs. 30 steps of Adam(1e-3) on the four pairs, noise off."""
    task = _task.__wrapped__()  # a fresh copy: `fit` changes its weights
    sources, targets = _pairs()
    task.compile(sampler="greedy")
    before = _generate_ids(task, sources)
    task.compile(optimizer=keras.optimizers.Adam(1e-3), sampler="greedy")
    task.fit(
        {"encoder_text": sources, "decoder_text": targets},
        epochs=30,
        batch_size=len(sources),
        shuffle=False,
        verbose=0,
    )
    x, labels, real, train_logits = _training_logits(task, sources, targets)
    _, step_logits = _teacher_forced_step_logits(task, sources, labels, T)
    diff = np.abs(step_logits - train_logits).max(axis=-1)
    assert diff[real].max() <= ATOL, diff[real].max()

    generated = _assert_generate_is_argmax(task, sources)
    assert not np.array_equal(generated, before)
    sep = task.preprocessor.tokenizer.sep_token_id
    assert (generated[:, 0] != sep).all()  # no empty generation
    exact = [
        np.array_equal(generated[b, : real[b].sum()], labels[b, : real[b].sum()])
        for b in range(len(sources))
    ]
    assert sum(exact) >= 2, (generated, labels)
