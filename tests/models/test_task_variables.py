"""Which variables each task trains (`models/task_variables.py`): only the
text classifier reads the backbone's pooler, so only it trains it; the
others neither warn that it has no gradient nor change it. Runs unchanged on
every Keras backend."""

import warnings

import keras
import numpy as np
import pytest

from keras_unilmv2.models.task_variables import restore_checkpoint
from keras_unilmv2.models.task_variables import trainable_variables_with_unused
from keras_unilmv2.models.unilmv2_masked_lm import UniLMv2MaskedLM
from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM
from keras_unilmv2.models.unilmv2_question_answerer import UniLMv2QuestionAnswerer
from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier

PRESET = "unilmv2_tiny_en_uncased"
TEXTS = [
    "the list type is a mutable sequence of items",
    "a tuple is an immutable sequence of objects",
    "the dictionary maps keys to values",
    "a set holds unique elements without an order",
]


def classifier():
    task = UniLMv2TextClassifier.from_preset(PRESET, num_classes=2, sequence_length=16)
    return task, (TEXTS, np.array([0, 1, 0, 1]))


def masked_lm():
    return UniLMv2MaskedLM.from_preset(PRESET, sequence_length=16), (TEXTS,)


def question_answerer():
    task = UniLMv2QuestionAnswerer.from_preset(PRESET, sequence_length=96)
    questions = ["what is a list?"] * 4
    words = [t.split()[-1] for t in TEXTS]
    answers = {"answer_start": [t.rindex(w) for t, w in zip(TEXTS, words)], "answer_text": words}
    return task, ((questions, TEXTS), answers)


def seq2seq_lm():
    task = UniLMv2Seq2SeqLM.from_preset(PRESET, encoder_sequence_length=16, decoder_sequence_length=8)
    return task, ({"encoder_text": TEXTS, "decoder_text": [t.split()[1] for t in TEXTS]},)


def pmlm():
    return UniLMv2PMLM.from_preset(PRESET, sequence_length=16), (TEXTS,)


def own_variables(task, layer):
    """The variables of a backbone layer but not of its token embedding
    (the LM head's tied output projection)."""
    shared = {id(v) for v in task.backbone.token_embedding.weights}
    return [v for v in getattr(task.backbone, layer).weights if id(v) not in shared]


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


@pytest.mark.parametrize(
    "build, unused",
    [
        (classifier, ["lm_head"]),
        (masked_lm, ["pooled_dense"]),
        (question_answerer, ["pooled_dense", "lm_head"]),
        (seq2seq_lm, ["pooled_dense"]),
        (pmlm, ["pooled_dense"]),
    ],
    ids=["classifier", "masked_lm", "question_answerer", "seq2seq_lm", "pmlm"],
)
def test_a_task_trains_the_backbone_layers_it_reads_and_leaves_the_others(build, unused):
    task, data = build()
    assert task.unused_backbone_layers == tuple(unused)
    trainable = {id(v) for v in task.trainable_variables}
    assert {id(v) for v in task.trainable_weights} == trainable
    layers = {name: own_variables(task, name) for name in ("pooled_dense", "lm_head")}
    for name, variables in layers.items():
        assert variables, name
        ids = {id(v) for v in variables}
        # The backbone on its own (e.g. for the next task built on it) trains them.
        assert ids <= {id(v) for v in task.backbone.trainable_variables}, name
        assert (ids & trainable == set()) is (name in unused), name
    # The tied embedding is trained by every task.
    assert {id(v) for v in task.backbone.token_embedding.weights} <= trainable
    # Every variable is listed once, as trainable or as not.
    for listed, every in (
        (task.trainable_variables + task.non_trainable_variables, task.variables),
        (task.trainable_weights + task.non_trainable_weights, task.weights),
    ):
        assert sorted(id(v) for v in listed) == sorted(id(v) for v in every)

    before = {name: values(variables) for name, variables in layers.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task.fit(*data, batch_size=4, epochs=1, verbose=0)
    # TensorFlow and PyTorch warned about them; JAX decayed them (AdamW).
    unused_warnings = [str(w.message) for w in caught if "Gradients do not exist" in str(w.message)]
    assert not unused_warnings, unused_warnings
    for name, variables in layers.items():
        changed = any(not np.array_equal(a, b) for a, b in zip(before[name], values(variables)))
        assert changed is (name not in unused), name


# --- resuming: the optimizer's layout ----------------------------------------


def restore_without_skipping(task, path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restore_checkpoint(task, path)
    # What Keras says when it leaves the optimizer's state out.
    skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
    assert not skipped, skipped


def fitted(task, data, tmp_path, name):
    task.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01))
    task.fit(*data, batch_size=2, epochs=1, verbose=0)
    path = str(tmp_path / f"{name}.weights.h5")
    task.save_weights(path)
    return path


def test_an_older_checkpoint_with_state_for_the_unread_pooler_resumes_whole(tmp_path):
    old, data = pmlm()
    # Checkpoints written before the PMLM left the pooler out: optimizer
    # state for every variable of the backbone.
    every = trainable_variables_with_unused(old)
    assert len(every) == len(old.trainable_variables) + 2
    old.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01))
    old.optimizer.build(every)
    # A state to recognise: step 7, random moments.
    rng = np.random.default_rng(0)
    old.optimizer.iterations.assign(7)
    for variable in old.optimizer.variables:
        if len(variable.shape):
            variable.assign(rng.uniform(0.0, 1e-3, variable.shape).astype("float32"))
    path = str(tmp_path / "old.weights.h5")
    old.save_weights(path)

    resumed, _ = pmlm()
    resumed.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01))
    restore_without_skipping(resumed, path)
    assert len(resumed.optimizer.variables) == len(old.optimizer.variables) - 4  # 2 x 2 moments
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 7
    saved = {v.name: keras.ops.convert_to_numpy(v) for v in old.optimizer.variables}
    for variable in resumed.optimizer.variables:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), saved[variable.name])
    # It trains on, and still leaves the pooler alone.
    pooler = values(resumed.backbone.pooled_dense.weights)
    embedding = values(resumed.backbone.token_embedding.weights)
    resumed.fit(*data, batch_size=2, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 9
    for a, b in zip(pooler, values(resumed.backbone.pooled_dense.weights)):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(embedding, values(resumed.backbone.token_embedding.weights))
    )


def test_a_current_checkpoint_resumes_and_a_foreign_one_is_refused(tmp_path):
    task, data = masked_lm()
    path = fitted(task, data, tmp_path, "current")
    resumed, _ = masked_lm()
    resumed.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01))
    restore_without_skipping(resumed, path)
    assert len(resumed.optimizer.variables) == len(task.optimizer.variables)
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 2

    # Another optimizer's state (plain SGD keeps none per variable).
    other, _ = masked_lm()
    other.compile(optimizer=keras.optimizers.SGD(1e-3))
    other.fit(*data, batch_size=2, epochs=1, verbose=0)
    foreign = str(tmp_path / "sgd.weights.h5")
    other.save_weights(foreign)
    refused, _ = masked_lm()
    refused.compile(optimizer=keras.optimizers.AdamW(1e-3))
    with pytest.raises(ValueError, match="Cannot resume from .*sgd.weights.h5.* AdamW"):
        restore_checkpoint(refused, foreign)
