"""UniLMv2Seq2SeqLM: reference parity (training forward, loss, greedy and beam
decoding), cached vs uncached generation, no future leak, training, saving,
position-table extension and bad input."""

import json
import os
from unittest import mock

import keras
import numpy as np
import pytest

from keras_unilmv2 import masks
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2LabelSmoothingLoss
from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
from keras_unilmv2.models.unilmv2_seq2seq_lm import extend_position_embeddings
from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.conversion import convert_checkpoint
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import reference_backbone
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import to_numpy

ATOL = 1e-5
SEP, MASK, DOT = 7, 8, 9
# seq2seq.npz: S = 16, T = 10, layout [source | target | pseudo].
S, T = 16, 10
CASES = ["case1_clean", "case2_noised"]
PAIRS = [
    ("the cat sat on the mat and the dog ran to the park . the sun was big", "the cat sat ."),
    ("two birds flew over the old house at night", "birds flew over the house"),
    ("he reads a book", "he is reading"),
]


# --- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory):
    """The fixture's raw checkpoint converted into a preset directory."""
    path = tmp_path_factory.mktemp("seq2seq") / "tiny_preset"
    convert_checkpoint(
        fixture_path("model.bin"),
        fixture_path("config.json"),
        fixture_path("vocab.txt"),
        str(path),
    )
    return str(path)


@pytest.fixture(scope="module")
def s2s_data():
    return np.load(fixture_path("seq2seq.npz"))


@pytest.fixture(scope="module")
def decode_data():
    with open(fixture_path("decode.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def train_task(preset_dir):
    """Loaded from the converted preset; training eps (1e-12), no noise."""
    preprocessor = UniLMv2Seq2SeqLMPreprocessor.from_preset(
        preset_dir,
        encoder_sequence_length=S,
        decoder_sequence_length=T,
        pseudo_keep_rate=0.0,
        pseudo_random_rate=0.0,
        target_mask_rate=0.0,
    )
    return UniLMv2Seq2SeqLM.from_preset(preset_dir, preprocessor=preprocessor)


@pytest.fixture(scope="module")
def decode_task(preset_dir):
    """Loaded from the converted preset with the decoder's LayerNorm eps 1e-5.

    The reference cuts sources to max_seq_length - 2 - max_tgt_length = 28
    pieces, i.e. `encoder_sequence_length=30` with `[CLS]`/`[SEP]`.
    """
    backbone = UniLMv2Backbone.from_preset(preset_dir, layer_norm_epsilon=1e-5)
    preprocessor = UniLMv2Seq2SeqLMPreprocessor.from_preset(
        preset_dir, encoder_sequence_length=30, decoder_sequence_length=10
    )
    return UniLMv2Seq2SeqLM.from_preset(
        preset_dir, backbone=backbone, preprocessor=preprocessor
    )


def _randomize(backbone, seed, scale=0.2):
    """Backend-independent random weights (keras' initializers draw differently
    per backend); large enough that greedy decisions are not near-ties."""
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:
        value = rng.normal(0.0, scale, tuple(weight.shape))
        if "gamma" in weight.path:
            value += 1.0
        weight.assign(value.astype("float32"))


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


@pytest.fixture(scope="module")
def random_task(tokenizer):
    """A tiny model with random weights (vocab 120 = the fixture vocabulary)."""
    backbone = tiny_backbone(dropout=0.0)
    _randomize(backbone, seed=3)
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=12, decoder_sequence_length=8, seed=5
    )
    return UniLMv2Seq2SeqLM(backbone, preprocessor=preprocessor)


# --- helpers -----------------------------------------------------------------


def _case_inputs(data, case):
    p = case + "/"
    token_ids = data[p + "input_ids"]
    return {
        "token_ids": token_ids,
        "segment_ids": data[p + "token_type_ids"],
        "position_ids": data[p + "position_ids"],
        "padding_mask": np.ones_like(token_ids),
        "attention_mask": data[p + "attention_mask"],
        "pseudo_positions": np.tile(np.arange(S + T, S + 2 * T, dtype="int32"), (3, 1)),
    }


def _to_tensors(inputs):
    return {k: keras.ops.convert_to_tensor(np.asarray(v)) for k, v in inputs.items()}


def _generate_ids(task, texts, max_length, stop_token_ids=None):
    """Runs the task's (compiled) generate function; returns numpy outputs."""
    inputs = task.preprocessor.generate_preprocess(texts, sequence_length=max_length)
    outputs = task.make_generate_function()(
        _to_tensors(inputs), stop_token_ids=stop_token_ids
    )
    return (
        to_numpy(outputs["decoder_token_ids"]),
        to_numpy(outputs["decoder_padding_mask"]),
    )


def _compiled(fn):
    """`fn` compiled for the backend (XLA on JAX, a graph on TensorFlow, no
    autograd on torch): op-by-op eager runs of these small steps are slow on
    the shared CPU. Model variables are read as constants."""
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


def _cached_step_logits(task, texts, steps):
    """Greedy decoding by calling `call_with_cache` step by step."""
    inputs = _to_tensors(task.preprocessor.generate_preprocess(texts, sequence_length=steps))
    build = _compiled(lambda ids, mask: task._build_cache(ids, mask, steps))
    step = _compiled(task.call_with_cache)
    context, cache = build(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
    prompt = np.zeros((len(texts), steps + 1), "int32")
    all_logits = []
    for index in range(1, steps + 1):
        logits, _, cache = step(
            keras.ops.convert_to_tensor(prompt),
            cache,
            keras.ops.convert_to_tensor(index, "int32"),
            context,
        )
        logits = to_numpy(logits)
        all_logits.append(logits)
        prompt[:, index] = logits.argmax(-1)
    return np.stack(all_logits, axis=1), prompt[:, 1:]


def _cut(ids, stops=(SEP, 0)):
    out = []
    for token in ids:
        if token in stops:
            break
        out.append(int(token))
    return out


# --- training forward: parity with seq2seq.npz -------------------------------


@pytest.mark.parametrize("case", CASES)
def test_pseudo_logits_match_reference(train_task, s2s_data, case):
    logits = to_numpy(train_task(_case_inputs(s2s_data, case)))
    assert logits.shape == (3, T, 120)
    np.testing.assert_allclose(logits, s2s_data[case + "/pseudo_logits"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_per_token_loss_matches_reference(train_task, s2s_data, case):
    logits = train_task(_case_inputs(s2s_data, case))
    labels = s2s_data[case + "/label_ids"]
    per_token = UniLMv2LabelSmoothingLoss(0.1, reduction=None)(labels, logits)
    np.testing.assert_allclose(
        to_numpy(per_token), s2s_data[case + "/per_token_loss"], atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("case", CASES)
def test_loss_matches_reference(train_task, s2s_data, case):
    """The compiled ("auto") loss of the task on the preprocessor's weights.

    Keras' `mean_with_sample_weight` divides by the number of real target
    tokens n; the reference divides by n + 1e-5 (its guard against an empty
    batch). With n = 14 that makes ours larger by the factor
    (n + 1e-5) / n = 1 + 7e-7, far below the 1e-5 relative tolerance, so the
    reference value is compared directly.
    """
    x = _case_inputs(s2s_data, case)
    labels = s2s_data[case + "/label_ids"]
    weights = (labels != 0).astype("float32")
    logits = train_task(x)
    loss = float(
        to_numpy(train_task.compute_loss(x=x, y=labels, y_pred=logits, sample_weight=weights))
    )
    reference = float(s2s_data[case + "/loss"])
    assert abs(loss - reference) <= 1e-5 * abs(reference), (loss, reference)
    # The per-token losses times the weights, normalised like the reference.
    per_token = s2s_data[case + "/per_token_loss"]
    n = weights.sum()
    assert abs((per_token * weights).sum() / (n + 1e-5) - reference) <= 1e-6 * reference


@pytest.mark.parametrize("case", CASES)
def test_loss_without_label_smoothing(train_task, s2s_data, case):
    task = UniLMv2Seq2SeqLM(
        train_task.backbone, train_task.preprocessor, label_smoothing=0.0
    )
    x = _case_inputs(s2s_data, case)
    labels = s2s_data[case + "/label_ids"]
    weights = (labels != 0).astype("float32")
    logits = task(x)
    loss = float(to_numpy(task.compute_loss(x=x, y=labels, y_pred=logits, sample_weight=weights)))
    harness = float(s2s_data[case + "/loss_no_label_smoothing_harness"])
    assert abs(loss - harness) <= 1e-5 * abs(harness), (loss, harness)
    if case == "case1_clean":
        # The reference model's own plain cross-entropy branch.
        reference = float(s2s_data[case + "/loss_no_label_smoothing"])
        assert abs(loss - reference) <= 1e-5 * abs(reference), (loss, reference)
    # Smoothing changes the value (the test can fail if it were ignored).
    smoothed = float(s2s_data[case + "/loss"])
    assert abs(loss - smoothed) > 0.1


def test_preprocessed_batch_reproduces_reference_forward(train_task, s2s_data):
    """Text -> preprocessor -> task gives the reference logits of case1."""
    x, y, weights = train_task.preprocessor(
        {"encoder_text": [a for a, _ in PAIRS], "decoder_text": [b for _, b in PAIRS]}
    )
    logits = to_numpy(train_task(_to_tensors(x)))
    np.testing.assert_array_equal(np.asarray(y), s2s_data["case1_clean/label_ids"])
    np.testing.assert_allclose(
        logits, s2s_data["case1_clean/pseudo_logits"], atol=ATOL, rtol=0
    )


# --- no leak from the future ---------------------------------------------------


def test_pseudo_logits_do_not_see_later_targets(train_task, s2s_data):
    x = _case_inputs(s2s_data, "case1_clean")
    base = to_numpy(train_task(x))
    row, k = 1, 3  # example 1 has 7 real target tokens; change target k
    assert s2s_data["case1_clean/num_target_tokens"][row] == 7

    changed = dict(x, token_ids=x["token_ids"].copy())
    changed["token_ids"][row, S + k] = 50 if x["token_ids"][row, S + k] != 50 else 51
    logits = to_numpy(train_task(changed))
    # Pseudo slots 0..k do not see target k; slots after it do.
    np.testing.assert_allclose(logits[row, : k + 1], base[row, : k + 1], atol=1e-6, rtol=0)
    assert np.abs(logits[row, k + 1] - base[row, k + 1]).max() > 1e-3
    # Other examples are untouched.
    np.testing.assert_allclose(logits[[0, 2]], base[[0, 2]], atol=1e-6, rtol=0)

    # Later pseudo tokens are invisible to earlier ones as well.
    changed = dict(x, token_ids=x["token_ids"].copy())
    changed["token_ids"][row, S + T + k] = 50
    logits = to_numpy(train_task(changed))
    np.testing.assert_allclose(logits[row, :k], base[row, :k], atol=1e-6, rtol=0)
    np.testing.assert_allclose(logits[row, k + 1 :], base[row, k + 1 :], atol=1e-6, rtol=0)
    assert np.abs(logits[row, k] - base[row, k]).max() > 1e-3  # it sees itself


# --- decoding: parity with decode.json / decode_steps.npz ----------------------


def test_decoding_sources_tokenize_like_reference(decode_task, decode_data):
    texts = [e["source_text"] for e in decode_data["examples"]]
    inputs = decode_task.preprocessor.generate_preprocess(texts, sequence_length=10)
    source = np.asarray(inputs["encoder_token_ids"])
    for i, example in enumerate(decode_data["examples"]):
        n = len(example["source_ids"]) + 2
        assert source[i, :n].tolist() == [6] + example["source_ids"] + [SEP]
        assert not source[i, n:].any()


def test_greedy_generate_matches_reference(decode_task, decode_data):
    decode_task.compile(sampler="greedy")
    texts = [e["source_text"] for e in decode_data["examples"]]
    greedy = decode_data["runs"][0]
    assert greedy["settings"]["name"] == "greedy"

    # All max_tgt_length steps, no stop token (the reference greedy path).
    ids, mask = _generate_ids(decode_task, texts, 10, stop_token_ids=None)
    assert ids.shape == (3, 11)
    for i, expected in enumerate(greedy["per_example"]):
        assert ids[i, 1:].tolist() == expected["raw_output_ids"], i
    assert mask[:, 1:].all() and not mask[:, 0].any()

    # With the stop token: the same tokens up to the first [SEP].
    ids, mask = _generate_ids(decode_task, texts, 10, stop_token_ids=(SEP,))
    for i, expected in enumerate(greedy["per_example"]):
        assert _cut(ids[i, 1:]) == expected["output_ids"], i
        n = len(expected["output_ids"])
        stops = n < 10
        assert mask[i, 1:].tolist() == [True] * (n + stops) + [False] * (10 - n - stops)

    # Strings in, strings out.
    texts_out = decode_task.generate(texts, max_length=10)
    assert texts_out == [e["output_text"] for e in greedy["per_example"]]


def test_greedy_step_logits_match_reference(decode_task, decode_data):
    steps = np.load(fixture_path("decode_steps.npz"))
    texts = [e["source_text"] for e in decode_data["examples"]]
    logits, tokens = _cached_step_logits(decode_task, texts, 10)
    rows = decode_data["reference_batch"]["row_to_example"]
    for row, example in enumerate(rows):
        np.testing.assert_allclose(
            logits[example], steps["greedy/step_logits"][row], atol=1e-4, rtol=0
        )
        assert tokens[example].tolist() == steps["greedy/output_ids"][row].tolist()


BEAM_RUNS = [
    "beam3_lp0.9",
    "beam3_lp0.9_trigram",
    "beam3_lp0.9_trigram_noignore",
    "beam3_lp0_minlen4",
]


def _beam_sampler(settings, **kwargs):
    from keras_unilmv2.samplers import UniLMv2BeamSampler

    ignore = settings["forbid_ignore_word"]
    assert ignore in (None, ".")
    return UniLMv2BeamSampler(
        num_beams=settings["beam_size"],
        length_penalty=settings["length_penalty"],
        min_length=settings["min_len"],
        no_repeat_ngram_size=(
            settings["ngram_size"] if settings["forbid_duplicate_ngrams"] else 0
        ),
        ngram_ignore_token_ids=[DOT] if ignore == "." else None,
        **kwargs,
    )


@pytest.mark.parametrize("name", BEAM_RUNS)
def test_beam_search_matches_reference(decode_task, decode_data, name):
    """Every beam run: the chosen hypothesis and its length-normalised score,
    from `UniLMv2BeamSampler` driven by the task's cached step."""
    run = {r["settings"]["name"]: r for r in decode_data["runs"]}[name]
    texts = [e["source_text"] for e in decode_data["examples"]]
    sampler = _beam_sampler(run["settings"], return_all_beams=True)

    def search(inputs):
        context, cache = decode_task._build_cache(
            inputs["encoder_token_ids"], inputs["encoder_padding_mask"], 10
        )
        return sampler(
            next=lambda p, c, i: decode_task.call_with_cache(p, c, i, context),
            prompt=inputs["decoder_token_ids"],
            cache=cache,
            index=1,
            mask=inputs["decoder_padding_mask"],
            stop_token_ids=(SEP,),
            model=decode_task,
        )

    inputs = _to_tensors(decode_task.preprocessor.generate_preprocess(texts, sequence_length=10))
    sequences, scores = _compiled(search)(inputs)
    sequences, scores = to_numpy(sequences), to_numpy(scores)
    for i, expected in enumerate(run["per_example"]):
        pred = expected["pred_seq"]
        assert sequences[i, 0, 1 : 1 + len(pred)].tolist() == pred, (name, i)
        assert not sequences[i, 0, 1 + len(pred) :].any(), (name, i)
        assert _cut(sequences[i, 0, 1:]) == expected["output_ids"], (name, i)
        np.testing.assert_allclose(
            scores[i, 0], expected["selected_final_score"], atol=1e-4, rtol=0
        )


def test_beam_generate_matches_reference(decode_task, decode_data):
    """`generate()` end to end (text in, text out) with the beam sampler, on
    the run that exercises every rule at once (trigram blocking with an
    ignore word); the other runs go through the same code (see above)."""
    run = {r["settings"]["name"]: r for r in decode_data["runs"]}["beam3_lp0.9_trigram"]
    texts = [e["source_text"] for e in decode_data["examples"]]
    decode_task.compile(sampler=_beam_sampler(run["settings"]))
    ids, mask = _generate_ids(decode_task, texts, 10, stop_token_ids=(SEP,))
    for i, expected in enumerate(run["per_example"]):
        pred = expected["pred_seq"]
        assert ids[i, 1 : 1 + len(pred)].tolist() == pred, i
        assert mask[i].tolist() == [False] + [True] * len(pred) + [False] * (10 - len(pred))
    outputs = decode_task.generate(texts, max_length=10)
    assert outputs == [e["output_text"] for e in run["per_example"]]
    decode_task.compile(sampler="greedy")


def test_generation_compiles_with_xla_unless_turned_off(random_task):
    """`generate()` is XLA-compiled by default (on TensorFlow too, where
    Keras turns XLA off on CPU); `jit_compile=False` opts out; both give the
    same tokens."""
    texts = [p[0] for p in PAIRS]
    random_task.compile(sampler="greedy", jit_compile=False)
    plain, _ = _generate_ids(random_task, texts, 8)
    if keras.config.backend() == "tensorflow":
        assert random_task.make_generate_function()._jit_compile is False
    random_task.compile(sampler="greedy")
    compiled, _ = _generate_ids(random_task, texts, 8)
    if keras.config.backend() == "tensorflow":
        assert random_task.make_generate_function()._jit_compile is True
    np.testing.assert_array_equal(plain, compiled)
    assert compiled[:, 1:].any()


# --- cached generation equals full recomputation ------------------------------


def _uncached_greedy(task, texts, steps):
    """Greedy decoding that recomputes `[source | generated | [MASK]]` through
    the backbone at every step, with the mask and positions of
    `masks.seq2seq_decoding_*`. Returns (step logits, tokens)."""
    backbone = task.backbone
    inputs = task.preprocessor.generate_preprocess(texts, sequence_length=steps)
    source = np.asarray(inputs["encoder_token_ids"])
    source_mask = np.asarray(inputs["encoder_padding_mask"])
    batch, source_length = source.shape
    n_s = source_mask.sum(axis=1).astype("int32")
    positions = masks.seq2seq_decoding_position_ids(n_s, source_length, steps, ops="keras")
    attention = masks.seq2seq_decoding_attention_mask(n_s, source_length, steps, ops="keras")
    segments = np.concatenate(
        [np.zeros((batch, source_length), "int32"), np.ones((batch, steps), "int32")], axis=1
    )
    padding = np.concatenate([source_mask, np.ones((batch, steps), bool)], axis=1)

    def forward(x, slot):
        sequence = backbone(x)["sequence_output"]
        return backbone.lm_head(sequence, positions=slot)[:, 0, :]

    forward = _compiled(forward)
    generated = np.zeros((batch, steps), "int32")
    all_logits = []
    for t in range(steps):
        target = generated.copy()
        target[:, t] = MASK
        target[:, t + 1 :] = 0
        x = {
            "token_ids": np.concatenate([source, target], axis=1),
            "segment_ids": segments,
            "position_ids": to_numpy(positions),
            "padding_mask": padding.astype("int32"),
            "attention_mask": to_numpy(attention),
        }
        slot = np.full((batch, 1), source_length + t, "int32")
        logits = to_numpy(forward(_to_tensors(x), keras.ops.convert_to_tensor(slot)))
        all_logits.append(logits)
        generated[:, t] = logits.argmax(-1)
    return np.stack(all_logits, axis=1), generated


def test_cached_generation_equals_recomputation(random_task):
    texts = ["the dog ran to the park and saw a big red ball .", "she walks", "he reads a book"]
    steps = 8
    full_logits, full_tokens = _uncached_greedy(random_task, texts, steps)
    # The decisions are not near-ties, so float noise cannot flip them.
    top2 = np.sort(full_logits, axis=-1)[..., -2:]
    assert (top2[..., 1] - top2[..., 0]).min() > 1e-3

    cached_logits, cached_tokens = _cached_step_logits(random_task, texts, steps)
    np.testing.assert_allclose(cached_logits, full_logits, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(cached_tokens, full_tokens)

    random_task.compile(sampler="greedy")
    ids, _ = _generate_ids(random_task, texts, steps, stop_token_ids=None)
    np.testing.assert_array_equal(ids[:, 1:], full_tokens)


def test_decoding_step_leaves_its_cache_as_it_was(random_task):
    """`call_with_cache` writes a copy of the given cache (generation's
    in-place torch step is tested in `test_torch_decoding.py`)."""
    texts = ["she walks", "he reads a book"]
    inputs = _to_tensors(random_task.preprocessor.generate_preprocess(texts, sequence_length=4))
    context, cache = random_task._build_cache(
        inputs["encoder_token_ids"], inputs["encoder_padding_mask"], 4
    )
    step = _compiled(random_task.call_with_cache)  # torch: under no_grad
    prompt = keras.ops.convert_to_tensor(np.full((2, 5), 7, "int32"))
    index = keras.ops.convert_to_tensor(2, "int32")
    logits, _, copied = step(prompt, cache, index, context)
    flat = keras.tree.flatten
    for leaf in flat(cache):
        np.testing.assert_array_equal(to_numpy(leaf), 0)
    assert all(np.abs(to_numpy(leaf)).max() > 0 for leaf in flat(copied))
    again, _, _ = step(prompt, cache, index, context)
    np.testing.assert_array_equal(to_numpy(again), to_numpy(logits))


def test_generation_chooses_its_step_once(random_task):
    from keras_unilmv2.models import torch_decoding

    original = torch_decoding.decoding_step
    chosen = []

    def decoding_step(task, context):
        chosen.append(original(task, context))
        return chosen[-1]

    random_task.compile(sampler="greedy")
    with mock.patch.object(torch_decoding, "decoding_step", decoding_step):
        ids, _ = _generate_ids(random_task, ["she walks"], 4)
    # Once for all 4 steps (JAX / TF: traced once).
    assert len(chosen) == 1 and ids[:, 1:].any()
    if keras.config.backend() == "torch":
        assert chosen[0] is not None  # the direct torch step
    else:
        assert chosen[0] is None  # `call_with_cache`, compiled


def test_torch_generation_runs_in_inference_mode(random_task):
    if keras.config.backend() != "torch":
        pytest.skip("torch only: JAX and TensorFlow compile generation (tested above)")
    import torch

    modes = []
    original = random_task.generate_step

    def generate_step(*args, **kwargs):
        modes.append(torch.is_inference_mode_enabled())
        return original(*args, **kwargs)

    random_task.generate_step = generate_step
    random_task.compile(sampler="greedy")
    ids, _ = _generate_ids(random_task, ["she walks"], 4)
    assert modes == [True] and ids[:, 1:].any()


def test_batch_with_sources_of_different_lengths(random_task):
    texts = ["she walks", "the dog ran to the park and saw a big red ball .", "he reads"]
    random_task.compile(sampler="greedy")
    batched, _ = _generate_ids(random_task, texts, 6)
    for i, text in enumerate(texts):
        alone, _ = _generate_ids(random_task, [text], 6)
        np.testing.assert_array_equal(batched[i], alone[0])
    # Different sources give different outputs (the source is read).
    assert len({tuple(row) for row in batched.tolist()}) > 1


@pytest.mark.parametrize("sampler", ["top_k", "top_p"])
def test_generate_with_sampling(random_task, sampler):
    random_task.compile(sampler=sampler)
    outputs = random_task.generate(["the dog ran", "she walks in the park"], max_length=5)
    assert isinstance(outputs, list) and len(outputs) == 2
    assert all(isinstance(o, str) for o in outputs)
    single = random_task.generate("he reads a book", max_length=5)
    assert isinstance(single, str)
    # Outputs are cut at the end token (and padding), whatever was sampled.
    for word in " ".join(outputs + [single]).split():
        assert word not in ("[SEP]", "[PAD]")
    random_task.compile(sampler="greedy")


# --- training and saving -------------------------------------------------------


def test_fit_decreases_loss(tokenizer):
    keras.utils.set_random_seed(0)
    backbone = tiny_backbone(dropout=0.0)
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=8, seed=1
    )
    task = UniLMv2Seq2SeqLM(backbone, preprocessor=preprocessor)
    task.compile(optimizer=keras.optimizers.AdamW(5e-3, weight_decay=0.01, clipnorm=1.0))
    data = {
        "encoder_text": [a for a, _ in PAIRS] + ["she walks in the park"],
        "decoder_text": [b for _, b in PAIRS] + ["she walks"],
    }
    history = task.fit(data, batch_size=4, epochs=8, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 8 and np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


def test_saved_model_round_trip(random_task, tmp_path):
    random_task.compile(sampler="greedy")
    x, _, _ = random_task.preprocessor(
        {"encoder_text": [a for a, _ in PAIRS], "decoder_text": [b for _, b in PAIRS]}
    )
    x = _to_tensors(x)
    expected = to_numpy(random_task(x))

    path = os.path.join(tmp_path, "seq2seq.keras")
    random_task.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, UniLMv2Seq2SeqLM)
    assert restored.get_config()["label_smoothing"] == random_task.label_smoothing
    np.testing.assert_allclose(to_numpy(restored(x)), expected, atol=1e-6, rtol=0)
    assert restored.preprocessor.get_config() == random_task.preprocessor.get_config()

    preset = os.path.join(tmp_path, "preset")
    random_task.save_to_preset(preset)
    loaded = UniLMv2Seq2SeqLM.from_preset(preset)
    assert loaded.preprocessor.encoder_sequence_length == 12
    assert loaded.preprocessor.decoder_sequence_length == 8
    np.testing.assert_allclose(to_numpy(loaded(x)), expected, atol=1e-6, rtol=0)
    # The tokenizer came back with its vocabulary.
    assert loaded.preprocessor.tokenizer.get_vocabulary() == (
        random_task.preprocessor.tokenizer.get_vocabulary()
    )


# --- position table extension ---------------------------------------------------


def test_extend_position_embeddings_tiles_rows():
    backbone = reference_backbone()
    old = to_numpy(backbone.position_embedding.embeddings)
    assert old.shape[0] == 64
    extended = extend_position_embeddings(backbone, 150)
    new = to_numpy(extended.position_embedding.embeddings)
    assert new.shape == (150, old.shape[1]) and extended.max_sequence_length == 150
    np.testing.assert_array_equal(new[:64], old)
    np.testing.assert_array_equal(new[64:128], old)
    np.testing.assert_array_equal(new[128:], old[:22])
    # Every other weight is copied; the given backbone is unchanged.
    table_path = extended.position_embedding.embeddings.path
    for source, target in zip(backbone.weights, extended.weights):
        if target.path != table_path:
            np.testing.assert_array_equal(to_numpy(source), to_numpy(target))
    assert backbone.max_sequence_length == 64
    assert to_numpy(backbone.position_embedding.embeddings).shape[0] == 64
    # Long enough already: the same object.
    assert extend_position_embeddings(backbone, 64) is backbone


def test_task_extends_the_table_when_needed(preset_dir, tokenizer):
    # The default preprocessor (192 + 64) exceeds the fixture's 64 rows.
    task = UniLMv2Seq2SeqLM.from_preset(preset_dir)
    assert task.preprocessor.encoder_sequence_length + task.preprocessor.decoder_sequence_length == 256
    assert task.backbone.max_sequence_length == 256
    old = to_numpy(reference_backbone().position_embedding.embeddings)
    new = to_numpy(task.backbone.position_embedding.embeddings)
    np.testing.assert_array_equal(new, np.tile(old, (4, 1)))

    backbone = tiny_backbone()
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=48, decoder_sequence_length=24
    )
    task = UniLMv2Seq2SeqLM(backbone, preprocessor=preprocessor)
    assert task.backbone is not backbone and task.backbone.max_sequence_length == 72
    assert backbone.max_sequence_length == 64
    small = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=40, decoder_sequence_length=24
    )
    assert UniLMv2Seq2SeqLM(backbone, preprocessor=small).backbone is backbone
    # A long source generates past row 64 of the original table.
    task.compile(sampler="greedy")
    ids, _ = _generate_ids(task, ["the dog ran to the park " * 6], 24)
    assert ids.shape == (1, 25)


# --- bad input ------------------------------------------------------------------


def test_bad_input(random_task):
    random_task.compile(sampler="greedy")
    with pytest.raises(ValueError, match="encoder_text"):
        random_task.generate(["the dog ran", ""], max_length=4)
    with pytest.raises(ValueError, match="max_length"):
        random_task.generate(["the dog ran"], max_length=0)
    with pytest.raises(ValueError, match="max_length"):
        random_task.generate(["the dog ran"], max_length=-3)
    # 12 source slots + 60 > 64 rows of the position table.
    with pytest.raises(ValueError, match="position table"):
        random_task.generate(["the dog ran"], max_length=60)
    with pytest.raises(ValueError, match="Unknown sampler 'beam_search'"):
        random_task.compile(sampler="beam_search")
    with pytest.raises(ValueError, match="label_smoothing"):
        UniLMv2Seq2SeqLM(random_task.backbone, random_task.preprocessor, label_smoothing=1.0)
    with pytest.raises(ValueError, match="smoothing"):
        UniLMv2LabelSmoothingLoss(-0.1)
    # Empty target text in training data.
    with pytest.raises(ValueError, match="decoder_text"):
        random_task.preprocessor({"encoder_text": ["a b"], "decoder_text": [" "]})
    # Without a preprocessor the task cannot know the [MASK] id.
    bare = UniLMv2Seq2SeqLM(random_task.backbone, preprocessor=None)
    inputs = _to_tensors(random_task.preprocessor.generate_preprocess(["a b"], sequence_length=3))
    with pytest.raises(ValueError, match="preprocessor"):
        bare.generate_step(inputs)
