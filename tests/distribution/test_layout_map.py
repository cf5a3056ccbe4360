"""`UniLMv2Backbone.get_layout_map`: the sharding of every weight.

Two halves:

- In this process, on whatever backend the session runs (TensorFlow, JAX or
  PyTorch): the `LayoutMap` lookup of every weight path of the tasks against
  the expected table below, exactly one rule per path, argument checks.
  `LayoutMap` and `DeviceMesh` are plain Python objects, so this runs on
  every backend.
- In a subprocess, always on JAX with 8 virtual CPU devices
  (`tests/distribution/dist_worker.py layout`): the shardings the weights
  actually get under `keras.distribution.ModelParallel` on a 2x4
  `("batch", "model")` mesh, and the tied LM head. `keras.distribution` is
  implemented for JAX only in Keras 3, and `XLA_FLAGS` must be set before
  JAX is imported (pytest may already have imported it), hence the
  subprocess: on the TensorFlow and PyTorch backends these tests still run,
  on JAX.

The table is written out weight by weight on purpose: a renamed weight
would no longer match its rule and silently fall back to replication
(Keras replicates a weight that no rule matches), which only an explicit
list of paths catches.
"""

import os
import re
import sys

import keras
import pytest

from keras_unilmv2.models.unilmv2_backbone import LAYOUT_RULES
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from unilmv2_test_utils import tiny_backbone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_worker import run_cases  # noqa: E402

M = "model"
# Every weight of the tiny PMLM / seq2seq tasks (2 layers) -> its sharding
# on a ("batch", "model") mesh. None = replicated along that dimension.
_LAYER = {
    "self_attention/query/kernel": [None, M],
    "self_attention/query/bias": [M],
    "self_attention/key/kernel": [None, M],
    "self_attention/value/kernel": [None, M],
    "self_attention/value/bias": [M],
    "self_attention/attention_output/kernel": [M, None],
    "self_attention/attention_output/bias": [None],
    "self_attention_layer_norm/gamma": [None],
    "self_attention_layer_norm/beta": [None],
    "feedforward_intermediate_dense/kernel": [None, M],
    "feedforward_intermediate_dense/bias": [M],
    "feedforward_output_dense/kernel": [M, None],
    "feedforward_output_dense/bias": [None],
    "feedforward_layer_norm/gamma": [None],
    "feedforward_layer_norm/beta": [None],
}
EXPECTED = {
    "token_embedding/embeddings": [None, M],
    "position_embedding/embeddings": [None, M],
    "segment_embedding/embeddings": [None, M],
    "embeddings_layer_norm/gamma": [None],
    "embeddings_layer_norm/beta": [None],
    "relative_position_bias/bias_table": [None, None],
    **{
        f"transformer_layer_{i}/{name}": spec
        for i in range(2)
        for name, spec in _LAYER.items()
    },
    "pooled_dense/kernel": [None, None],
    "pooled_dense/bias": [None],
    "lm_head/transform_dense/kernel": [None, None],
    "lm_head/transform_dense/bias": [None],
    "lm_head/transform_layer_norm/gamma": [None],
    "lm_head/transform_layer_norm/beta": [None],
    "lm_head/output_bias": [None],
}
# The classifier's own head is not part of the backbone's layout map; Keras
# replicates it. These are the only weights allowed to match no rule.
CLASSIFIER_HEAD = {"logits/kernel": [None, None], "logits/bias": [None]}


def _tasks():
    from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM
    from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM

    from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier

    return {
        "pmlm": UniLMv2PMLM(tiny_backbone()),
        "seq2seq": UniLMv2Seq2SeqLM(tiny_backbone()),
        "classifier": UniLMv2TextClassifier(tiny_backbone(), num_classes=3),
    }


def _mesh(axis_names=("batch", "model")):
    # Device names only: nothing is placed, so this works on every backend.
    return keras.distribution.DeviceMesh((2, 4), list(axis_names), [f"cpu:{i}" for i in range(8)])


def _matching_rules(path):
    return [pattern for pattern, _ in LAYOUT_RULES if re.fullmatch(pattern, path)]


# --- in-process, every backend ----------------------------------------------


@pytest.fixture(scope="module")
def tasks():
    return _tasks()


def test_every_backbone_weight_matches_exactly_one_rule(tasks):
    for name, task in tasks.items():
        for weight in task.weights:
            rules = _matching_rules(weight.path)
            if name == "classifier" and weight.path in CLASSIFIER_HEAD:
                assert rules == [], (weight.path, rules)
            else:
                assert len(rules) == 1, (name, weight.path, rules)


def test_layout_map_lookup_matches_the_table(tasks):
    layout_map = UniLMv2Backbone.get_layout_map(_mesh())
    for name, task in tasks.items():
        expected = dict(EXPECTED, **(CLASSIFIER_HEAD if name == "classifier" else {}))
        paths = [w.path for w in task.weights]
        assert sorted(paths) == sorted(expected), name
        for weight in task.weights:
            layout = layout_map[weight.path]
            if weight.path in CLASSIFIER_HEAD:
                assert layout is None, weight.path
                continue
            assert list(layout.axes) == expected[weight.path], weight.path
            assert len(layout.axes) == len(weight.shape), weight.path


def test_layout_map_uses_the_given_axis_names():
    layout_map = UniLMv2Backbone.get_layout_map(
        _mesh(("data", "mp")), model_parallel_dim_name="mp", data_parallel_dim_name="data"
    )
    assert layout_map["transformer_layer_3/self_attention/query/kernel"].axes == (None, "mp")
    assert layout_map["feedforward_output_dense/kernel"].axes == ("mp", None)
    # Nested under a task's own names (`re.fullmatch` with `.*` prefixes).
    assert layout_map["task/backbone/token_embedding/embeddings"].axes == (None, "mp")


def test_layout_map_rejects_an_unknown_model_axis():
    with pytest.raises(ValueError, match="model_parallel_dim_name.*'mp'"):
        UniLMv2Backbone.get_layout_map(_mesh(), model_parallel_dim_name="mp")


def test_sharded_dimensions_are_not_the_vocabulary():
    # JAX shards only dimensions the mesh axis divides; vocabularies (30522)
    # are not multiples of 4 or 8, so no rule may split the vocabulary.
    backbone = tiny_backbone(vocabulary_size=122)
    layout_map = UniLMv2Backbone.get_layout_map(_mesh())
    for weight in backbone.weights:
        axes = layout_map[weight.path].axes
        for size, axis in zip(weight.shape, axes):
            if axis is not None:
                assert size != 122, weight.path


# --- subprocess on JAX, 8 CPU devices ---------------------------------------


@pytest.fixture(scope="module")
def layout_result():
    return run_cases("layout")["layout"]


def test_model_parallel_shardings_match_the_table(layout_result):
    assert layout_result["rules"] == [pattern for pattern, _ in LAYOUT_RULES]
    assert set(layout_result["tasks"]) == {"pmlm", "seq2seq", "classifier"}
    for name, result in layout_result["tasks"].items():
        expected = dict(EXPECTED, **(CLASSIFIER_HEAD if name == "classifier" else {}))
        specs = {path: row["spec"] for path, row in result["weights"].items()}
        assert specs == expected, name
        for path, row in result["weights"].items():
            assert len(row["rules"]) == (0 if path in CLASSIFIER_HEAD else 1), (name, path)
            assert row["spec"] is not None and len(row["spec"]) == len(row["shape"])
        assert result["num_weights"] == result["num_unique_weights"] == len(expected)


def test_released_vocabulary_size_shards(layout_result):
    for mesh, specs in layout_result["vocabulary_30522"].items():
        assert isinstance(specs, dict), (mesh, specs)
        assert specs == {
            "token_embedding/embeddings": [None, M],
            "position_embedding/embeddings": [None, M],
            "segment_embedding/embeddings": [None, M],
        }, mesh


def test_tied_lm_head_under_model_parallel(layout_result):
    tied = layout_result["tied"]
    # One table, shared by the input embedding and the output projection.
    assert tied["same_variable"] is True
    assert tied["num_embedding_tables"] == 1
    assert tied["spec"] == EXPECTED["token_embedding/embeddings"]
    # Assigning new values keeps every sharding.
    assert tied["specs_after_assign"] == EXPECTED
    # With the word-embedding row of one id zeroed, that id's logit is
    # exactly its output bias (3.25) at every slot: the head multiplies by
    # the (sharded) tied table. The other logits are small but not zero.
    for output in ("ae", "par"):
        low, high = tied["row_logits"][output]
        assert low == pytest.approx(3.25, abs=1e-6) and high == pytest.approx(3.25, abs=1e-6)
        assert 1e-3 < tied["other_logits_max_abs"][output] < 3.0
