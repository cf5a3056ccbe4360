"""Mixed precision (`mixed_bfloat16`, `mixed_float16`) for the tasks.

For the PMLM, the seq2seq LM and the text classifier built on a backbone
with a mixed policy: the task takes the backbone's policy, variables stay
float32, outputs (logits) are in the compute dtype, the loss is computed
and returned in float32, a training step gives a finite loss and finite
float32 weights, and a fully padded row (padding mask all 0, no target)
gives no NaN. With `mixed_float16`, `compile()` wraps the optimizer in a
`keras.optimizers.LossScaleOptimizer` (Keras does it for a model whose
policy is `mixed_float16`; the task inherits the backbone's policy).

The training step uses the backbone's default dropout (0.1), which takes
the explicit attention path; `predict()` with dropout 0 takes the fused
`keras.ops.dot_product_attention` path. That path fails for float16 on JAX
on CPU inside JAX (see `test_mixed_precision_compiled_inference`); every
other combination runs on all three backends, PyTorch on CPU included.
"""

import functools

import keras
import numpy as np
import pytest

from keras_unilmv2 import masks
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import random_inputs
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import to_numpy

POLICIES = ["mixed_bfloat16", "mixed_float16"]
COMPUTE = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
MASK = 8  # [MASK] in tests/data/tiny_uncased/vocab.txt
PAIRS = [
    ("the cat sat on the mat and the dog ran to the park .", "the cat sat ."),
    ("two birds flew over the old house at night", "birds flew over the house"),
    ("he reads a book", "he is reading"),
]


def _classifier_cls():
    try:
        from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier
    except ImportError:
        return None
    return UniLMv2TextClassifier


TASKS = ["pmlm", "seq2seq"] + (["classifier"] if _classifier_cls() else [])


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _pad_last_row(x, y, sample_weight):
    """Turns the last example into a fully padded row (no token, no target)."""
    x = {k: np.array(v) for k, v in x.items()}
    for value in x.values():
        value[-1] = 0
    y = keras.tree.map_structure(lambda v: np.array(v), y)
    keras.tree.map_structure(lambda v: v.__setitem__(-1, 0), y)
    if sample_weight is not None:
        sample_weight = keras.tree.map_structure(lambda v: np.array(v), sample_weight)
        keras.tree.map_structure(lambda v: v.__setitem__(-1, 0.0), sample_weight)
    return x, y, sample_weight


@functools.lru_cache(maxsize=None)
def _pmlm_batch():
    # Two texts of 8 slots: blocks {2, 3} then {5}; {1} then {4, 6}.
    context = np.array(
        [[6, 20, MASK, MASK, 30, MASK, 40, 7], [6, MASK, 21, 22, MASK, 23, MASK, 7]], "int32"
    )
    positions = np.array([[2, 3, 5], [1, 4, 6]], "int32")
    steps = np.array([[1, 1, 2], [1, 2, 2]], "int32")
    originals = np.array([[50, 51, 52], [53, 54, 55]], "int32")
    layout = masks.pmlm_layout(
        context, np.ones_like(context, bool), positions, steps, originals, MASK, ops="keras"
    )
    x = masks.pmlm_model_inputs(layout, positions)
    # A third example, then fully padded.
    x = {k: np.concatenate([v, v[:1]]) for k, v in x.items()}
    labels = np.concatenate([originals, originals[:1]])
    weights = np.ones(labels.shape, "float32")
    y, sw = {"ae": labels, "par": labels}, {"ae": weights, "par": weights}
    return _pad_last_row(x, y, sw)


def _seq2seq_preprocessor():
    from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
        UniLMv2Seq2SeqLMPreprocessor,
    )
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

    return UniLMv2Seq2SeqLMPreprocessor(
        UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt")),
        encoder_sequence_length=12,
        decoder_sequence_length=6,
        seed=1,
    )


@functools.lru_cache(maxsize=None)
def _seq2seq_batch():
    preprocessor = _seq2seq_preprocessor()
    sources, targets = zip(*PAIRS)
    x, y, sw = preprocessor({"encoder_text": list(sources), "decoder_text": list(targets)})
    x = {k: to_numpy(v).astype("int32") for k, v in x.items()}
    x, y, sw = _pad_last_row(x, to_numpy(y), to_numpy(sw))
    return x, y, sw


def _classifier_batch():
    x = random_inputs(batch=3, length=9, seed=2, pad=3)
    y = np.array([0, 2, 1], "int32")
    x, y, _ = _pad_last_row(x, y, None)
    return x, y, None


def _build(task, policy, dropout=0.0):
    # One layer: the dtype logic is per layer, and compiling stays cheap.
    backbone = tiny_backbone(dtype=policy, dropout=dropout, num_layers=1)
    if task == "pmlm":
        from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM

        return UniLMv2PMLM(backbone), _pmlm_batch()
    if task == "seq2seq":
        from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM

        return UniLMv2Seq2SeqLM(backbone), _seq2seq_batch()
    model = _classifier_cls()(backbone, num_classes=3, dropout=dropout)
    return model, _classifier_batch()


def _finite(x):
    return bool(np.isfinite(to_numpy(keras.ops.cast(x, "float32"))).all())


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("policy", POLICIES)
def test_mixed_precision_outputs_and_loss(task, policy):
    model, (x, y, sample_weight) = _build(task, policy)
    compute = COMPUTE[policy]
    assert model.dtype_policy.name == policy
    for weight in model.weights:
        assert weight.dtype == "float32", weight.path

    # Logits in the compute dtype, finite, also on the fully padded row.
    outputs = model(x)
    for logits in keras.tree.flatten(outputs):
        assert _dtype(logits) == compute
        assert _finite(logits)

    # The loss is float32 (Keras casts logits to the loss dtype), finite.
    loss = model.compute_loss(x=x, y=y, y_pred=outputs, sample_weight=sample_weight)
    assert _dtype(loss) == "float32"
    assert _finite(loss) and float(to_numpy(loss)) > 0.0


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("policy", POLICIES)
def test_mixed_precision_train_step(task, policy):
    # The backbone's default dropout (0.1): what fine-tuning and pre-training
    # run. (See `test_mixed_precision_compiled_inference` for dropout 0.)
    model, (x, y, sample_weight) = _build(task, policy, dropout=0.1)
    # float16 trains through a loss-scale optimizer, wrapped by compile().
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    else:
        assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = [to_numpy(w) for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0.0
    after = [to_numpy(w) for w in model.trainable_weights]
    for weight, value in zip(model.trainable_weights, after):
        assert weight.dtype == "float32", weight.path
        assert np.isfinite(value).all(), weight.path
    # A step was applied (loss scaling skips a step only on inf/nan grads).
    assert max(np.abs(a - b).max() for a, b in zip(after, before)) > 0.0


@pytest.mark.parametrize("policy", POLICIES)
def test_mixed_precision_compiled_inference(policy):
    """`predict()` (compiled), where attention takes the fused
    `keras.ops.dot_product_attention` path (no dropout). One task: the
    attention kernel is the same in all of them."""
    task = "pmlm"
    # On JAX's CPU backend float16 takes the explicit attention path (XLA:CPU
    # has no float16 x float16 -> float32 dot for the fused kernel).
    model, (x, _, _) = _build(task, policy)
    outputs = model.predict(x, verbose=0)
    for logits in keras.tree.flatten(outputs):
        assert _dtype(logits) == COMPUTE[policy]
        assert _finite(logits)


@pytest.mark.parametrize("policy", POLICIES)
def test_mixed_precision_cached_generation(policy):
    """The cached decoding path under a mixed policy: its sublayers autocast
    (`call_with_cache` calls them as `layer(...)`; generation keeps it, the
    direct torch step covers float32 only), a step's logits are in the
    compute dtype and close to the float32 model's, and `generate()`
    runs."""
    from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM

    preprocessor = _seq2seq_preprocessor()
    full = UniLMv2Seq2SeqLM(tiny_backbone(num_layers=1, dropout=0.0), preprocessor)
    half = UniLMv2Seq2SeqLM(
        tiny_backbone(num_layers=1, dropout=0.0, dtype=policy), preprocessor
    )
    half.backbone.set_weights(full.backbone.get_weights())
    inputs = preprocessor.generate_preprocess([PAIRS[0][0], PAIRS[2][0]], sequence_length=4)
    inputs = {k: keras.ops.convert_to_tensor(v) for k, v in inputs.items()}
    prompt = keras.ops.convert_to_tensor(np.full((2, 5), 20, "int32"))
    step_logits = []
    for model in (full, half):
        context, cache = model._build_cache(
            inputs["encoder_token_ids"], inputs["encoder_padding_mask"], 4
        )
        for index in (1, 2):
            logits, _, cache = model.call_with_cache(prompt, cache, index, context)
        step_logits.append(logits)
    assert _dtype(step_logits[1]) == COMPUTE[policy]
    full_logits = to_numpy(step_logits[0])
    half_logits = to_numpy(keras.ops.cast(step_logits[1], "float32"))
    assert np.abs(full_logits).max() > 0.1
    # Half precision (8 or 11 mantissa bits) through one layer: the largest
    # difference measured is 0.0022 (bf16) and 0.00033 (fp16), logits up to 0.4.
    tolerance = 0.01 if policy == "mixed_bfloat16" else 0.002
    np.testing.assert_allclose(half_logits, full_logits, atol=tolerance)
    half.compile(sampler="greedy")
    outputs = half.generate([PAIRS[0][0]], max_length=4)
    assert isinstance(outputs, list) and len(outputs) == 1


@pytest.mark.parametrize("task", TASKS)
def test_explicit_loss_scale_optimizer_is_not_wrapped_twice(task):
    model, _ = _build(task, "mixed_float16")
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01))
    model.compile(optimizer=optimizer)
    assert model.optimizer is optimizer
