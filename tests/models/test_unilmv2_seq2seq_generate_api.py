"""UniLMv2Seq2SeqLM.generate: prompted decoding (`decoder_text`), all beams
with their scores, `return_scores`, `strip_prompt`, and the sampler surviving
a `.keras` save/load."""

import contextlib
import os

import keras
import numpy as np
import pytest

from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.samplers import UniLMv2BeamSampler
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import to_numpy

SEP = 7
TEXTS = ["the dog ran to the park", "she walks", "he reads a book"]


@pytest.fixture(scope="module")
def task():
    """A tiny model with backend-independent random weights (vocab 120)."""
    tokenizer = UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))
    backbone = tiny_backbone(dropout=0.0)
    rng = np.random.default_rng(3)
    for weight in backbone.weights:
        value = rng.normal(0.0, 0.2, tuple(weight.shape))
        if "gamma" in weight.path:
            value += 1.0
        weight.assign(value.astype("float32"))
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=12, decoder_sequence_length=8
    )
    return UniLMv2Seq2SeqLM(backbone, preprocessor=preprocessor)


def _ids(task, x, max_length, stop_token_ids=(SEP,)):
    inputs = task.preprocessor.generate_preprocess(x, sequence_length=max_length)
    inputs = {k: keras.ops.convert_to_tensor(np.asarray(v)) for k, v in inputs.items()}
    outputs = task.make_generate_function()(inputs, stop_token_ids=stop_token_ids)
    return {k: to_numpy(v) for k, v in outputs.items()}


def _token_ids(task, text):
    ids = task.preprocessor.tokenizer([text])
    ids = ids.to_list() if hasattr(ids, "to_list") else ids
    return [int(i) for i in ids[0]]


def _no_grad():
    """Decoding steps run as in generation: without autograd on torch."""
    if keras.config.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _teacher_forced_log_prob(task, text, ids):
    """Sum of log-softmax of `ids[1:]` (up to the first [SEP], inclusive),
    each read at its own step of `call_with_cache`: an independent score."""
    with _no_grad():
        return _teacher_forced(task, text, ids)


def _teacher_forced(task, text, ids):
    inputs = task.preprocessor.generate_preprocess([text], sequence_length=len(ids) - 1)
    inputs = {k: keras.ops.convert_to_tensor(np.asarray(v)) for k, v in inputs.items()}
    context, cache = task._build_cache(
        inputs["encoder_token_ids"], inputs["encoder_padding_mask"], len(ids) - 1
    )
    prompt = keras.ops.convert_to_tensor(np.asarray(ids, "int32")[None, :])
    total = 0.0
    for index in range(1, len(ids)):
        logits, _, cache = task.call_with_cache(prompt, cache, index, context)
        logits = to_numpy(logits)[0].astype("float64")
        log_probs = logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max()
        total += log_probs[ids[index]]
        if ids[index] == SEP:
            break
    return total


# --- prompted decoding ----------------------------------------------------------


def test_prompt_continues_greedy_decoding(task):
    """A prompt equal to the first tokens of the unprompted greedy output
    gives the same output (the prompt is a target prefix); another prompt
    is kept as given and changes what follows."""
    task.compile(sampler="greedy")
    free = _ids(task, TEXTS, 7)
    tokens = free["decoder_token_ids"]
    assert tokens[:, 1:3].all(), "the test needs two generated tokens"
    prefix = [row[1:3].tolist() for row in tokens]
    prompted = _ids(task, {"encoder_text": TEXTS, "decoder_text": prefix}, 7)
    np.testing.assert_array_equal(prompted["decoder_token_ids"], tokens)
    np.testing.assert_array_equal(prompted["decoder_padding_mask"], free["decoder_padding_mask"])

    # A different first token: kept, and the continuation follows it.
    other = [[int(t) for t in (row[1] % 100 + 11,)] for row in tokens]
    forced = _ids(task, {"encoder_text": TEXTS, "decoder_text": other}, 7)
    forced_tokens = forced["decoder_token_ids"]
    assert forced_tokens[:, 1].tolist() == [o[0] for o in other]
    assert (forced_tokens[:, 2:] != tokens[:, 2:]).any()
    # The second token is the argmax of the step after the forced one.
    step_tokens = []
    for i, text in enumerate(TEXTS):
        inputs = task.preprocessor.generate_preprocess([text], sequence_length=7)
        inputs = {k: keras.ops.convert_to_tensor(np.asarray(v)) for k, v in inputs.items()}
        context, cache = task._build_cache(
            inputs["encoder_token_ids"], inputs["encoder_padding_mask"], 7
        )
        prompt = np.zeros((1, 8), "int32")
        prompt[0, 1] = other[i][0]
        prompt = keras.ops.convert_to_tensor(prompt)
        _, _, cache = task.call_with_cache(prompt, cache, 1, context)
        logits, _, _ = task.call_with_cache(prompt, cache, 2, context)
        step_tokens.append(int(to_numpy(logits)[0].argmax()))
    assert forced_tokens[:, 2].tolist() == step_tokens


def test_prompt_text_in_text_out_and_strip_prompt(task):
    task.compile(sampler="greedy")
    full = task.generate(
        {"encoder_text": TEXTS, "decoder_text": ["the cat", "", "a big red"]},
        max_length=7,
    )
    assert full[0].split()[:2] == ["the", "cat"]
    assert full[2].split()[:3] == ["a", "big", "red"]
    # An empty prompt is no prompt.
    assert full[1] == task.generate(TEXTS[1], max_length=7)
    stripped = task.generate(
        {"encoder_text": TEXTS, "decoder_text": ["the cat", "", "a big red"]},
        max_length=7,
        strip_prompt=True,
    )
    assert stripped[0] == " ".join(full[0].split()[2:])
    assert stripped[1] == full[1]
    assert stripped[2] == " ".join(full[2].split()[3:])
    # A single example (string prompt).
    single = task.generate(
        {"encoder_text": TEXTS[0], "decoder_text": "the cat"}, max_length=7
    )
    assert single == full[0]


def test_prompt_with_beam_search(task):
    task.compile(sampler=UniLMv2BeamSampler(num_beams=3, return_all_beams=True))
    out = _ids(task, {"encoder_text": TEXTS[:2], "decoder_text": ["the cat", ""]}, 7)
    ids = out["decoder_token_ids"]
    assert ids.shape == (2, 3, 8)
    cat = _token_ids(task, "the cat")
    assert ids[0, :, 1:3].tolist() == [cat] * 3
    # Prompt slots are output, never cut as stops.
    assert out["decoder_padding_mask"][0, :, 1:3].all()
    task.compile(sampler="greedy")


def test_bad_prompts(task):
    task.compile(sampler="greedy")
    with pytest.raises(ValueError, match="leaves no room"):
        task.generate(
            {"encoder_text": ["a b"], "decoder_text": ["the cat sat on the mat"]},
            max_length=4,
        )
    with pytest.raises(ValueError, match="must match `encoder_text`"):
        task.generate({"encoder_text": ["a b", "c d"], "decoder_text": ["the"]}, max_length=4)
    with pytest.raises(ValueError, match="decoder_txt"):
        task.generate({"encoder_text": ["a b"], "decoder_txt": ["the"]}, max_length=4)


# --- all beams and scores ---------------------------------------------------------


def test_all_beams_with_scores(task):
    """`return_all_beams=True`: `num_beams` strings per example, best first,
    with their scores; the first one is the single-beam result."""
    settings = dict(num_beams=3, length_penalty=0.0, no_repeat_ngram_size=2)
    task.compile(sampler=UniLMv2BeamSampler(**settings))
    best, best_scores = task.generate(TEXTS, max_length=6, return_scores=True)
    assert isinstance(best, list) and len(best) == 3
    assert best_scores.shape == (3,) and best_scores.dtype == np.float32
    assert best == task.generate(TEXTS, max_length=6)

    task.compile(sampler=UniLMv2BeamSampler(return_all_beams=True, **settings))
    nbest = task.generate(TEXTS, max_length=6)
    assert [len(n) for n in nbest] == [3, 3, 3]
    assert all(isinstance(t, str) for n in nbest for t in n)
    nbest, scores = task.generate(TEXTS, max_length=6, return_scores=True)
    assert scores.shape == (3, 3)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert [n[0] for n in nbest] == best
    np.testing.assert_allclose(scores[:, 0], best_scores, atol=1e-6)
    # One example in, its beams out.
    single, single_scores = task.generate(TEXTS[1], max_length=6, return_scores=True)
    assert single == nbest[1] and single_scores.shape == (3,)
    np.testing.assert_allclose(single_scores, scores[1], atol=1e-5)

    # The scores are the summed log-probs of the tokens (length_penalty=0),
    # checked against teacher-forced steps.
    out = _ids(task, TEXTS, 6)
    assert out["decoder_token_ids"].shape == (3, 3, 7)
    for i, text in enumerate(TEXTS):
        for k in range(3):
            ids = out["decoder_token_ids"][i, k].tolist()
            expected = _teacher_forced_log_prob(task, text, ids)
            np.testing.assert_allclose(out["scores"][i, k], expected, atol=1e-4)
    task.compile(sampler="greedy")


def test_scores_with_length_penalty(task):
    task.compile(sampler=UniLMv2BeamSampler(num_beams=2, length_penalty=1.0))
    out = _ids(task, TEXTS[:1], 6)
    ids = out["decoder_token_ids"][0].tolist()
    # Generated tokens, the end token included.
    length = ids[1:].index(SEP) + 1 if SEP in ids[1:] else len(ids) - 1
    raw = _teacher_forced_log_prob(task, TEXTS[0], ids)
    np.testing.assert_allclose(out["scores"][0], raw / ((5 + length) / 6.0), atol=1e-4)
    task.compile(sampler="greedy")


def test_return_scores_needs_the_beam_sampler(task):
    task.compile(sampler="greedy")
    with pytest.raises(ValueError, match="UniLMv2BeamSampler"):
        task.generate(TEXTS, max_length=4, return_scores=True)
    with pytest.raises(TypeError, match="return_scores"):
        task.generate(TEXTS, max_length=4, return_scores="yes")
    with pytest.raises(TypeError, match="strip_prompt"):
        task.generate(TEXTS, max_length=4, strip_prompt=1)


def test_postprocess_groups_beams(task):
    ids = np.zeros((2, 2, 5), "int32")
    ids[0, 0, 1:4] = _token_ids(task, "the cat sat")
    reads = _token_ids(task, "he reads")  # "read ##s"
    ids[1, 1, 1 : 1 + len(reads)] = reads
    mask = ids > 0
    texts = task.preprocessor.generate_postprocess(
        {"decoder_token_ids": ids, "decoder_padding_mask": mask}
    )
    assert texts == [["the cat sat", ""], ["", "he reads"]]
    # Slots the mask clears are skipped.
    mask[0, 0, 1] = False
    texts = task.preprocessor.generate_postprocess(
        {"decoder_token_ids": ids, "decoder_padding_mask": mask}
    )
    assert texts[0][0] == "cat sat"


# --- saving ---------------------------------------------------------------------------


def test_beam_sampler_survives_save_and_load(task, tmp_path):
    sampler = UniLMv2BeamSampler(
        num_beams=3,
        length_penalty=0.7,
        min_length=1,
        no_repeat_ngram_size=2,
        ngram_ignore_token_ids=[9],
        return_all_beams=True,
    )
    task.compile(sampler=sampler)
    expected, expected_scores = task.generate(TEXTS, max_length=6, return_scores=True)
    path = os.path.join(tmp_path, "beam.keras")
    task.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.sampler, UniLMv2BeamSampler)
    assert restored.sampler.get_config() == sampler.get_config()
    assert restored.loss.get_config() == task.loss.get_config()
    outputs, scores = restored.generate(TEXTS, max_length=6, return_scores=True)
    assert outputs == expected
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)

    # A string sampler comes back too.
    task.compile(sampler="top_k")
    task.save(path)
    assert type(keras.saving.load_model(path).sampler).__name__ == "TopKSampler"
    task.compile(sampler="greedy")
