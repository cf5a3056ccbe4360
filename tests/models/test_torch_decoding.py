"""`keras_unilmv2.models.torch_decoding`: generation's direct torch step
computes what `UniLMv2Seq2SeqLM.call_with_cache` computes, writes its cache
in place only outside autograd, and is chosen only where it covers the
model (eager torch, float32, plain sublayers)."""

import keras
import numpy as np
import pytest

from keras_unilmv2.models import torch_decoding
from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import to_numpy

TORCH = keras.config.backend() == "torch"
TEXTS = ["she walks", "the dog ran to the park and saw a big red ball ."]


def _task(**overrides):
    backbone = tiny_backbone(dropout=0.0, **overrides)
    rng = np.random.default_rng(3)
    for weight in backbone.weights:  # large enough to give distinct logits
        value = rng.normal(0.0, 0.2, tuple(weight.shape))
        if "gamma" in weight.path:
            value += 1.0
        weight.assign(value.astype(weight.dtype))
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt")),
        encoder_sequence_length=12,
        decoder_sequence_length=6,
    )
    return UniLMv2Seq2SeqLM(backbone, preprocessor)


@pytest.fixture(scope="module")
def task():
    return _task()


def _context(task):
    inputs = task.preprocessor.generate_preprocess(TEXTS, sequence_length=4)
    inputs = {k: keras.ops.convert_to_tensor(np.asarray(v)) for k, v in inputs.items()}
    return task._build_cache(inputs["encoder_token_ids"], inputs["encoder_padding_mask"], 4)


def _no_grad():
    import torch

    return torch.no_grad()


def test_only_eager_torch_gets_a_direct_step(task):
    context, _ = _context(task)
    step = torch_decoding.decoding_step(task, context)
    if TORCH:
        assert callable(step)
    else:  # JAX and TensorFlow compile `call_with_cache` itself
        assert step is None


@pytest.mark.parametrize("group", [1, 3])
@pytest.mark.parametrize("tensor_index", [False, True])
def test_direct_step_equals_call_with_cache(task, group, tensor_index):
    """Steps 1-3 of `group` rows per source (a beam search's layout), with an
    int or a tensor slot index: the same logits, hidden states and cache."""
    if not TORCH:
        pytest.skip("the direct step exists on torch only (tested above)")
    with _no_grad():
        context, cache = _context(task)
        step = torch_decoding.decoding_step(task, context)
        cache = keras.tree.map_structure(lambda x: x.repeat_interleave(group, 0), cache)
        direct_cache = keras.tree.map_structure(lambda x: x.clone(), cache)
        prompt = np.random.default_rng(0).integers(10, 100, (2 * group, 5)).astype("int32")
        prompt = keras.ops.convert_to_tensor(prompt)
        for index in (1, 2, 3):
            if tensor_index:
                index = keras.ops.convert_to_tensor(index, "int32")
            logits, hidden, cache = task.call_with_cache(prompt, cache, index, context)
            direct_logits, direct_hidden, direct_cache = step(prompt, direct_cache, index)
            np.testing.assert_allclose(
                to_numpy(direct_logits), to_numpy(logits), atol=1e-5, rtol=0
            )
            np.testing.assert_allclose(
                to_numpy(direct_hidden), to_numpy(hidden), atol=1e-5, rtol=0
            )
            for a, b in zip(keras.tree.flatten(direct_cache), keras.tree.flatten(cache)):
                np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-5, rtol=0)
    assert np.abs(to_numpy(logits)).max() > 0.1
    assert np.ptp(to_numpy(logits)[0]) > 0.1


def test_direct_step_writes_in_place_only_outside_autograd(task):
    if not TORCH:
        pytest.skip("the direct step exists on torch only")
    import torch

    context, cache = _context(task)
    step = torch_decoding.decoding_step(task, context)
    prompt = keras.ops.convert_to_tensor(np.full((2, 5), 20, "int32"))
    with torch.enable_grad():
        _, _, copied = step(prompt, cache, 1)
    for leaf in keras.tree.flatten(cache):  # autograd on: a copy
        np.testing.assert_array_equal(to_numpy(leaf), 0)
    with torch.no_grad():
        _, _, written = step(prompt, cache, 1)
    for new, old, given in zip(
        keras.tree.flatten(written), keras.tree.flatten(copied), keras.tree.flatten(cache)
    ):
        assert new is given  # written into the given buffers
        np.testing.assert_allclose(to_numpy(new), to_numpy(old), atol=1e-6)
        assert np.abs(to_numpy(new)).max() > 0


def test_tied_projection_is_a_contiguous_transpose_on_a_cpu(task):
    if not TORCH:
        pytest.skip("the direct step exists on torch only")
    context, _ = _context(task)
    step = torch_decoding.decoding_step(task, context)
    table = task.backbone.token_embedding.embeddings
    assert tuple(step.projection.shape) == (table.shape[1], table.shape[0])
    if step.projection.device.type == "cpu":
        assert step.projection.is_contiguous()
    np.testing.assert_array_equal(to_numpy(step.projection), to_numpy(table).T)


def test_no_direct_step_where_not_covered():
    """Mixed precision and LoRA keep `call_with_cache` (its `layer(...)`
    calls autocast and add the LoRA term) on every backend."""
    mixed = _task(dtype="mixed_bfloat16")
    context, _ = _context(mixed)
    assert torch_decoding.decoding_step(mixed, context) is None
    lora = _task()
    lora.backbone.transformer_layers[0].self_attention.query_dense.enable_lora(2)
    context, _ = _context(lora)
    assert torch_decoding.decoding_step(lora, context) is None
    plain = _task()
    assert (torch_decoding.decoding_step(plain, _context(plain)[0]) is None) != TORCH
