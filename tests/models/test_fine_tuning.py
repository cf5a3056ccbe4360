"""The fine-tuning defaults every task shares (`models/fine_tuning.py`):
the fit-sized warm-up/decay schedule, per-epoch shuffling of array inputs,
and `from_preset` keywords. Runs unchanged on every Keras backend."""

import math
import warnings
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_hub.src.utils.pipeline_model import PipelineModel

from keras_unilmv2.models import fine_tuning
from keras_unilmv2.models.unilmv2_masked_lm import UniLMv2MaskedLM
from keras_unilmv2.models.unilmv2_question_answerer import UniLMv2QuestionAnswerer
from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier
from keras_unilmv2.utils.schedules import FineTuningSchedule

PRESET = "unilmv2_tiny_en_uncased"


# --- the schedule -----------------------------------------------------------


def test_schedule_warms_up_and_decays_over_the_planned_steps():
    schedule = FineTuningSchedule(1e-3, warmup_fraction=0.1)
    # Unplanned: the constant peak.
    assert float(schedule(0)) == pytest.approx(1e-3)
    schedule.plan(first_step=50, steps=100)
    assert (schedule.warmup_steps, schedule.total_steps) == (10, 100)
    rates = [float(schedule(50 + s)) for s in (0, 5, 10, 55, 100, 120)]
    np.testing.assert_allclose(rates, [0.0, 5e-4, 1e-3, 5e-4, 0.0, 0.0], atol=1e-9)
    restored = FineTuningSchedule.from_config(schedule.get_config())
    assert float(restored(105)) == pytest.approx(float(schedule(105)))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"peak_learning_rate": 0.0}, "peak_learning_rate"),
     ({"peak_learning_rate": 1e-4, "warmup_fraction": 1.0}, "warmup_fraction")],
)
def test_schedule_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FineTuningSchedule(**kwargs)


# --- from_preset keywords ------------------------------------------------------


def test_from_preset_honours_sequence_length():
    classifier = UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_length=24)
    assert classifier.preprocessor.sequence_length == 24
    masked_lm = UniLMv2MaskedLM.from_preset(PRESET, sequence_length=20)
    assert masked_lm.preprocessor.sequence_length == 20
    qa = UniLMv2QuestionAnswerer.from_preset(PRESET, sequence_length=96)
    assert qa.preprocessor.sequence_length == 96
    seq2seq = UniLMv2Seq2SeqLM.from_preset(
        PRESET, encoder_sequence_length=40, decoder_sequence_length=12
    )
    assert seq2seq.preprocessor.encoder_sequence_length == 40
    assert seq2seq.preprocessor.decoder_sequence_length == 12


def test_from_preset_rejects_unknown_keywords():
    with pytest.raises(TypeError, match="sequence_lenght"):
        UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_lenght=24)
    with pytest.raises(TypeError, match="encoder_length"):
        UniLMv2Seq2SeqLM.from_preset(PRESET, encoder_length=40)
    # keras-hub decides this one itself (it crashed with "multiple values").
    with pytest.raises(TypeError, match="load_task_weights"):
        UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, load_task_weights=False)


def test_from_preset_refuses_keywords_for_a_given_preprocessor():
    preprocessor = UniLMv2TextClassifier.preprocessor_cls.from_preset(PRESET)
    with pytest.raises(ValueError, match="not both"):
        UniLMv2TextClassifier.from_preset(
            PRESET, num_classes=2, preprocessor=preprocessor, sequence_length=24
        )


# --- compile defaults ---------------------------------------------------------------


def test_default_optimizer_is_adamw_on_the_fit_sized_schedule():
    classifier = UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_length=16)
    seq2seq = UniLMv2Seq2SeqLM.from_preset(PRESET)
    for task, rate in ((classifier, 3e-4), (seq2seq, 1e-3)):
        assert isinstance(task.optimizer, keras.optimizers.AdamW)
        assert isinstance(task.optimizer._learning_rate, FineTuningSchedule)
        assert task.optimizer.clipnorm == 1.0
        # The tiny preset is 256 wide: the measured small-model rate (a
        # 0.3 of it for the understanding tasks).
        assert task.optimizer._learning_rate.peak_learning_rate == pytest.approx(rate)
    # An explicit optimizer is kept as given.
    classifier.compile(optimizer=keras.optimizers.SGD(0.1))
    assert isinstance(classifier.optimizer, keras.optimizers.SGD)


def test_default_learning_rate_by_width():
    rates = [fine_tuning.default_learning_rate(w) for w in (1024, 768, 512, 384, 256, 32)]
    assert rates == [3e-5, 7e-5, 3e-4, 3e-4, 1e-3, 1e-3]


# --- fit: shuffling and the schedule's plan -----------------------------------


def _captured_fit_inputs(task, *args, **kwargs):
    """Calls `task.fit` with keras-hub's `fit` replaced; returns what the
    task handed it."""
    with mock.patch.object(PipelineModel, "fit", autospec=True) as fit:
        task.fit(*args, **kwargs)
    return fit.call_args


def _order(dataset):
    return [int(i) for batch in dataset for i in np.asarray(batch[1]).ravel()]


def test_fit_reshuffles_array_inputs_every_epoch():
    classifier = UniLMv2TextClassifier.from_preset(PRESET, num_classes=64, sequence_length=8)
    texts = [f"word {i}" for i in range(64)]
    labels = np.arange(64)
    call = _captured_fit_inputs(classifier, texts, labels, batch_size=8, epochs=2)
    dataset = call.kwargs["x"]
    assert isinstance(dataset, tf.data.Dataset)
    assert call.kwargs["y"] is None and call.kwargs["shuffle"] is False
    first, second = _order(dataset), _order(dataset)
    assert sorted(first) == sorted(second) == list(range(64))
    assert first != list(range(64)) and first != second
    # `shuffle=False` keeps the order (keras-hub batches the arrays as given).
    call = _captured_fit_inputs(classifier, texts, labels, batch_size=8, shuffle=False)
    assert call.kwargs["x"] is texts


def test_a_dataset_keeps_its_order_and_keras_warns_only_when_asked_to_shuffle():
    classifier = UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_length=8)
    dataset = tf.data.Dataset.from_tensor_slices((["a b", "c d"] * 4, [0, 1] * 4)).batch(4)
    call = _captured_fit_inputs(classifier, dataset)
    assert call.kwargs["x"] is dataset and call.kwargs["shuffle"] is False
    # What Keras receives decides its warning: none by default, and the
    # user's explicit (ignored) request is passed on for Keras to warn about.
    call = _captured_fit_inputs(classifier, dataset, shuffle=True)
    assert call.kwargs["x"] is dataset and call.kwargs["shuffle"] is True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier.fit(dataset, epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]


def test_fit_sizes_the_schedule_to_its_steps():
    classifier = UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_length=8)
    texts, labels = ["a b"] * 50, np.array([0, 1] * 25)
    classifier.fit(texts, labels, batch_size=8, epochs=3, verbose=0)
    schedule = classifier.optimizer._learning_rate
    steps = 3 * math.ceil(50 / 8)
    assert (schedule.first_step, schedule.total_steps) == (0, steps)
    assert schedule.warmup_steps == round(0.1 * steps)
    assert int(keras.ops.convert_to_numpy(classifier.optimizer.iterations)) == steps
    assert float(schedule(steps)) == 0.0
    # A second `fit` plans a new warm-up and decay from where the first ended.
    classifier.fit(texts, labels, batch_size=25, epochs=1, verbose=0)
    assert (schedule.first_step, schedule.total_steps) == (steps, 2)


def test_fit_validation_split_takes_the_last_examples_before_shuffling():
    (x, y, _), validation = fine_tuning.split_validation(
        ["a", "b", "c", "d", "e"], np.arange(5), None, 0.4
    )
    assert list(x) == ["a", "b", "c"] and list(y) == [0, 1, 2]
    assert list(validation[0]) == ["d", "e"] and list(validation[1]) == [3, 4]
    with pytest.raises(ValueError, match="validation_split"):
        fine_tuning.split_validation(["a", "b"], np.arange(2), None, 1.5)


def test_fit_on_an_unsized_dataset_warns_and_keeps_the_peak_rate():
    classifier = UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_length=8)
    dataset = tf.data.Dataset.from_tensor_slices((["a b"] * 8, [0, 1] * 4)).batch(4)
    dataset = dataset.filter(lambda x, y: True)  # unknown cardinality
    with pytest.warns(UserWarning, match="steps_per_epoch"):
        _captured_fit_inputs(classifier, dataset, epochs=1)
    assert classifier.optimizer._learning_rate.total_steps is None


def test_fit_refuses_inputs_of_different_lengths():
    seq2seq = UniLMv2Seq2SeqLM.from_preset(PRESET, encoder_sequence_length=16, decoder_sequence_length=8)
    with pytest.raises(ValueError, match=r"same number of examples.*'encoder_text'.*3.*'decoder_text'.*2"):
        seq2seq.fit({"encoder_text": ["a b", "c d", "e f"], "decoder_text": ["a", "b"]}, epochs=1)
    classifier = UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_length=8)
    with pytest.raises(ValueError, match=r"same number of examples.*'x': 3.*'y': 2"):
        classifier.fit(["a", "b", "c"], np.array([0, 1]), epochs=1)


# --- task presets: weights, not the optimizer's state -------------------------


def test_a_fine_tuned_task_preset_holds_no_optimizer_state_and_loads_silently(tmp_path):
    import h5py

    classifier = UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_length=8)
    classifier.fit(["a b", "c d"] * 4, np.array([0, 1] * 4), batch_size=4, verbose=0)
    assert classifier.optimizer.variables[1:]  # Built: moments to leave out.
    path = str(tmp_path / "preset")
    classifier.save_to_preset(path)
    with h5py.File(f"{path}/task.weights.h5") as f:
        assert "optimizer" not in f and "layers" in f
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = UniLMv2TextClassifier.from_preset(path)
    assert not [w for w in caught if "optimizer" in str(w.message)]
    texts = ["a b", "c d e"]
    np.testing.assert_allclose(
        loaded.predict(texts, verbose=0), classifier.predict(texts, verbose=0), atol=1e-6
    )

    # A file written with the optimizer's state (as keras-hub does) still
    # loads its weights, without the warning about the skipped state.
    old = str(tmp_path / "old.weights.h5")
    keras.saving.save_weights(
        classifier, old, objects_to_skip=list(classifier.backbone._flatten_layers())
    )
    with h5py.File(old) as f:
        assert "optimizer" in f
    fresh = UniLMv2TextClassifier.from_preset(path, num_classes=2)  # No task weights.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.load_task_weights(old)
    assert not [w for w in caught if "optimizer" in str(w.message)]
    np.testing.assert_allclose(
        fresh.predict(texts, verbose=0), classifier.predict(texts, verbose=0), atol=1e-6
    )
    for method in (classifier.save_task_weights, classifier.load_task_weights):
        with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`.*x\.h5"):
            method(str(tmp_path / "x.h5"))
