"""UniLMv2PMLM: one pass, AE + PAR, the no-leak rule, training and saving."""

import os

import keras
import numpy as np
import pytest

from keras_unilmv2 import masks
from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM
from keras_unilmv2.models.unilmv2_pmlm_preprocessor import UniLMv2PMLMPreprocessor
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import to_numpy

TEXTS = [
    "the quick fox ran over the lazy dog .",
    "she saw two birds in the park",
    "the cat sat on the mat and the dog ran to the park .",
    "two birds flew over the old house at night",
]


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


def _layout():
    # x0 [M] x2 [M] [M] x5 [M] x7, blocks {3, 4}, {1}, {6} in that order.
    layout = masks.pmlm_layout(
        context_ids=[[6, 8, 20, 8, 8, 30, 8, 7]],
        context_padding_mask=[[True] * 8],
        masked_positions=[[3, 4, 1, 6]],
        masked_steps=[[1, 1, 2, 3]],
        masked_ids=[[40, 41, 42, 43]],
        pseudo_token_id=8,
        ops="keras",
    )
    x = {k: to_numpy(v) for k, v in layout.items()}
    inputs = masks.pmlm_model_inputs(layout, [[3, 4, 1, 6]])
    return inputs, x["slot_kind"][0], x["slot_step"][0]


def test_par_logits_do_not_leak_later_originals():
    model = UniLMv2PMLM(tiny_backbone(dropout=0.0))
    inputs, kind, step = _layout()
    base = to_numpy(model(inputs)["par"])[0]
    originals = np.nonzero(kind == masks.ORIGINAL_SLOT)[0]
    pseudo_step = step[inputs["pseudo_positions"][0]]  # step of each [P]
    for k in (1, 2, 3):
        # Changing the originals of steps >= k leaves the PAR logits of
        # step k unchanged ...
        changed = {key: value.copy() for key, value in inputs.items()}
        later = originals[step[originals] >= k]
        changed["token_ids"][0, later] = 99
        out = to_numpy(model(changed)["par"])[0]
        np.testing.assert_allclose(out[pseudo_step == k], base[pseudo_step == k], atol=1e-5)
        # ... while changing an earlier step's originals changes them.
        if k > 1:
            earlier = originals[step[originals] == k - 1]
            changed = {key: value.copy() for key, value in inputs.items()}
            changed["token_ids"][0, earlier] = 99
            out = to_numpy(model(changed)["par"])[0]
            assert np.abs(out[pseudo_step == k] - base[pseudo_step == k]).max() > 1e-4


def test_ae_logits_see_only_the_corrupted_context():
    model = UniLMv2PMLM(tiny_backbone(dropout=0.0))
    inputs, kind, _ = _layout()
    base = to_numpy(model(inputs)["ae"])
    changed = {key: value.copy() for key, value in inputs.items()}
    non_context = np.nonzero(kind != masks.CONTEXT_SLOT)[0]
    changed["token_ids"][0, non_context] = 99
    np.testing.assert_allclose(to_numpy(model(changed)["ae"]), base, atol=1e-5)


def test_head_is_the_backbone_lm_head():
    backbone = tiny_backbone(dropout=0.0)
    model = UniLMv2PMLM(backbone)
    inputs, _, _ = _layout()
    outputs = model(inputs)
    # The dense inputs the task builds in its graph from the descriptors.
    backbone_inputs = masks.pmlm_backbone_inputs(inputs, ops="keras")
    assert tuple(backbone_inputs["attention_mask"].shape) == (1, 16, 16)
    # The full pass's rows: the task's last layer computes only the scored
    # slots (`backbone.encode(..., output_positions=...)`).
    sequence = backbone(backbone_inputs)["sequence_output"]
    for name, key in (("ae", "mask_positions"), ("par", "pseudo_positions")):
        expected = backbone.lm_head(sequence, positions=inputs[key])
        np.testing.assert_allclose(to_numpy(outputs[name]), to_numpy(expected), atol=1e-5)
    own = {w.path for w in model.trainable_weights} - {
        w.path for w in backbone.trainable_weights
    }
    assert not own, f"the task must add no weights of its own: {own}"


def test_fit_reduces_both_losses_and_reports_accuracies(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=20, seed=3)
    model = UniLMv2PMLM(tiny_backbone(), preprocessor)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(TEXTS * 4, batch_size=8, epochs=5, verbose=0).history
    for key in ("ae_loss", "par_loss", "ae_accuracy", "par_accuracy"):
        assert key in history, sorted(history)
    assert history["ae_loss"][-1] < history["ae_loss"][0]
    assert history["par_loss"][-1] < history["par_loss"][0]
    np.testing.assert_allclose(
        history["loss"][-1], history["ae_loss"][-1] + history["par_loss"][-1], rtol=1e-3
    )


def test_fit_reshuffles_texts_every_epoch(tokenizer):
    """keras-hub turns a list of texts into a dataset, for which Keras
    ignores `shuffle`: the task reshuffles them itself."""
    from unittest import mock

    from keras_hub.src.utils.pipeline_model import PipelineModel

    preprocessor = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=20, seed=3)
    model = UniLMv2PMLM(tiny_backbone(), preprocessor)
    texts = [f"text {i}" for i in range(32)]
    with mock.patch.object(PipelineModel, "fit", autospec=True) as fit:
        model.fit(texts, batch_size=4, epochs=2)
    call = fit.call_args
    assert call.kwargs["shuffle"] is False and call.kwargs["batch_size"] is None

    def order():
        return [t.decode() for (batch,) in call.kwargs["x"] for t in np.asarray(batch)]

    first, second = order(), order()
    assert sorted(first) == sorted(second) == sorted(texts)
    assert first != texts and first != second
    with mock.patch.object(PipelineModel, "fit", autospec=True) as fit:
        model.fit(texts, batch_size=4, shuffle=False)
    assert fit.call_args.kwargs["x"] is texts


def test_default_loss_is_a_mean_over_real_predictions(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=20, seed=3)
    model = UniLMv2PMLM(tiny_backbone(dropout=0.0), preprocessor)
    x, y, w = preprocessor(TEXTS)
    logits = model(x)
    expected = 0.0
    for name in ("ae", "par"):
        log_probs = to_numpy(keras.ops.log_softmax(keras.ops.cast(logits[name], "float32")))
        labels = to_numpy(y[name])
        weights = to_numpy(w[name])
        picked = np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
        expected += -(picked * weights).sum() / weights.sum()
    computed = model.evaluate(TEXTS, batch_size=len(TEXTS), verbose=0, return_dict=True)
    np.testing.assert_allclose(computed["loss"], expected, rtol=1e-4)


def test_save_and_load(tmp_path, tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=20, seed=3)
    model = UniLMv2PMLM(tiny_backbone(dropout=0.0), preprocessor)
    x, _, _ = preprocessor(TEXTS)
    path = os.path.join(tmp_path, "pmlm.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(model(x)["par"]), to_numpy(restored(x)["par"]), atol=1e-5
    )
    preset = os.path.join(tmp_path, "preset")
    model.save_to_preset(preset)
    again = UniLMv2PMLM.from_preset(preset)
    np.testing.assert_allclose(
        to_numpy(model(x)["ae"]), to_numpy(again(x)["ae"]), atol=1e-5
    )
