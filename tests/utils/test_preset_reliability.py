"""Reliability checks: ids checked where they enter, safe preset saving,
checked preset loading (checksums, truncated/missing files, config/weights
mismatches) and a task's parts fitting together."""

import json
import os
import shutil

import numpy as np
import pytest
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import random_inputs
from unilmv2_test_utils import tiny_backbone

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier
from keras_unilmv2.models.unilmv2_text_classifier_preprocessor import (
    UniLMv2TextClassifierPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils import preset_utils


@pytest.fixture(scope="module")
def backbone():
    return tiny_backbone()  # vocabulary_size=120, max_sequence_length=64


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))  # 120 tokens


@pytest.fixture
def preset(backbone, tokenizer, tmp_path):
    path = os.path.join(tmp_path, "preset")
    backbone.save_to_preset(path)
    tokenizer.save_to_preset(path)
    return path


def _bad(key, value, length=9):
    inputs = random_inputs(length=length)
    if key == "position_ids":
        inputs[key] = np.tile(np.arange(length, dtype="int32"), (2, 1))
    inputs[key] = np.array(inputs[key])
    inputs[key][1, 4] = value
    return inputs


# === Ids checked where they enter ===


@pytest.mark.parametrize(
    "key, value, bound",
    [
        ("token_ids", 120, "vocabulary_size"),
        ("token_ids", -1, "vocabulary_size"),
        ("segment_ids", 2, "num_segments"),
        ("position_ids", 64, "max_sequence_length"),
    ],
)
def test_backbone_refuses_out_of_range_ids(backbone, key, value, bound):
    limit = {"vocabulary_size": 120, "num_segments": 2, "max_sequence_length": 64}[bound]
    with pytest.raises(ValueError) as info:
        backbone(_bad(key, value))
    message = str(info.value)
    assert f"`{key}` must be in [0, {limit})" in message
    assert f"`{bound}` = {limit}" in message
    assert f"holding {value} at index (1, 4)" in message


def test_in_range_ids_pass_and_task_calls_are_checked(backbone):
    inputs = _bad("token_ids", 119)
    assert backbone(inputs)["pooled_output"].shape == (2, 32)
    classifier = UniLMv2TextClassifier(backbone, preprocessor=None, num_classes=2)
    with pytest.raises(ValueError, match=r"`token_ids` must be in \[0, 120\)"):
        classifier(_bad("token_ids", 500))


# === A task's parts must fit ===


def test_task_refuses_a_layout_longer_than_the_position_table(backbone, tokenizer):
    preprocessor = UniLMv2TextClassifierPreprocessor(tokenizer, sequence_length=80)
    with pytest.raises(ValueError, match="uses 80 positions.*`max_sequence_length` = 64"):
        UniLMv2TextClassifier(backbone, preprocessor=preprocessor, num_classes=2)


def test_task_refuses_a_vocabulary_larger_than_the_backbone(tokenizer):
    small = tiny_backbone(vocabulary_size=100)
    preprocessor = UniLMv2TextClassifierPreprocessor(tokenizer, sequence_length=16)
    with pytest.raises(ValueError, match="120 tokens.*`vocabulary_size` 100"):
        UniLMv2TextClassifier(small, preprocessor=preprocessor, num_classes=2)


def test_from_preset_refuses_a_vocabulary_longer_than_the_config(tokenizer, tmp_path):
    path = os.path.join(tmp_path, "mixed")
    tiny_backbone(vocabulary_size=118).save_to_preset(path)
    tokenizer.save_to_preset(path)  # 120 tokens: 2 more than the table
    for load in (
        UniLMv2Tokenizer.from_preset,
        UniLMv2TextClassifierPreprocessor.from_preset,
        lambda p: UniLMv2TextClassifier.from_preset(p, num_classes=2),
    ):
        with pytest.raises(ValueError, match="120 tokens.*`vocabulary_size` 118"):
            load(path)


def test_preprocessor_from_preset_refuses_a_too_long_layout(preset):
    with pytest.raises(ValueError, match="uses 100 positions.*= 64 rows"):
        UniLMv2TextClassifierPreprocessor.from_preset(preset, sequence_length=100)
    ok = UniLMv2TextClassifierPreprocessor.from_preset(preset, sequence_length=64)
    assert ok.sequence_length == 64


# === Saving ===


def test_save_refuses_a_non_empty_directory_unless_overwrite(backbone, tokenizer, preset, tmp_path):
    # Finishing the preset part by part worked (the fixture); a second
    # backbone into the same directory is an overwrite.
    before = preset_utils.file_sha256(os.path.join(preset, "model.weights.h5"))
    with pytest.raises(ValueError, match="is not empty.*another preset.*overwrite=True") as info:
        tiny_backbone(num_layers=1).save_to_preset(preset)
    assert os.path.realpath(preset) in str(info.value)
    assert before == preset_utils.file_sha256(os.path.join(preset, "model.weights.h5"))
    # A directory with any other file (here: a training record) is refused.
    other = os.path.join(tmp_path, "other")
    os.makedirs(os.path.join(other, "training"))
    with pytest.raises(ValueError, match="is not empty"):
        tokenizer.save_to_preset(other)
    with pytest.raises(ValueError, match="must be a directory"):
        open(os.path.join(tmp_path, "file"), "w").close()
        backbone.save_to_preset(os.path.join(tmp_path, "file"))
    # overwrite=True replaces the weights and keeps the other files.
    tiny_backbone(num_layers=1).save_to_preset(preset, overwrite=True)
    assert UniLMv2Backbone.from_preset(preset).num_layers == 1
    assert os.path.exists(os.path.join(preset, "tokenizer.json"))


def test_task_save_writes_all_parts_once_and_refuses_a_second_time(backbone, tokenizer, tmp_path):
    preprocessor = UniLMv2TextClassifierPreprocessor(tokenizer, sequence_length=16)
    task = UniLMv2TextClassifier(backbone, preprocessor=preprocessor, num_classes=2)
    path = os.path.join(tmp_path, "task")
    task.save_to_preset(path)
    names = set(os.listdir(path))
    assert {"task.json", "config.json", "model.weights.h5", "tokenizer.json"} <= names
    sums = json.load(open(os.path.join(path, "metadata.json")))["weights_sha256"]
    assert set(sums) == {n for n in names if n.endswith(".weights.h5")}
    with pytest.raises(ValueError, match="is not empty"):
        task.save_to_preset(path)
    loaded = UniLMv2TextClassifier.from_preset(path)
    texts = ["the quick brown fox", "a lazy dog ran"]
    np.testing.assert_allclose(
        np.asarray(loaded.predict(texts, verbose=0)),
        np.asarray(task.predict(texts, verbose=0)),
        atol=1e-5,
    )


# === Checked loading ===


def test_checksum_is_recorded_and_verified(preset):
    weights = os.path.join(preset, "model.weights.h5")
    metadata = json.load(open(os.path.join(preset, "metadata.json")))
    assert metadata["weights_sha256"] == {"model.weights.h5": preset_utils.file_sha256(weights)}
    UniLMv2Backbone.from_preset(preset)
    # 4 KB of flipped bytes in the middle of the file.
    with open(weights, "r+b") as f:
        f.seek(os.path.getsize(weights) // 2)
        block = bytearray(f.read(4096))
        f.seek(-len(block), 1)
        f.write(bytes(b ^ 0xFF for b in block))
    with pytest.raises(ValueError, match="is corrupted or was modified") as info:
        UniLMv2Backbone.from_preset(preset)
    assert weights in str(info.value)


def test_preset_without_checksum_still_loads(preset, backbone):
    path = os.path.join(preset, "metadata.json")
    metadata = json.load(open(path))
    del metadata["weights_sha256"]
    json.dump(metadata, open(path, "w"))
    loaded = UniLMv2Backbone.from_preset(preset)
    for a, b in zip(loaded.get_weights(), backbone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_shipped_preset_records_the_checksum_of_its_weights():
    # This checkout's copy (an editable install may resolve the name to
    # another checkout).
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(repo, "presets", "unilmv2_tiny_en_uncased")
    metadata = json.load(open(os.path.join(path, "metadata.json")))
    expected = preset_utils.file_sha256(os.path.join(path, "model.weights.h5"))
    assert metadata["weights_sha256"] == {"model.weights.h5": expected}


def _edit_config(preset, **changes):
    path = os.path.join(preset, "config.json")
    config = json.load(open(path))
    config["config"].update(changes)
    json.dump(config, open(path, "w"))


def test_fewer_layers_in_the_config_than_in_the_weights_is_an_error(preset):
    _edit_config(preset, num_layers=1)
    with pytest.raises(ValueError, match="holds 2 transformer layers, the model .* 1") as info:
        UniLMv2Backbone.from_preset(preset)
    assert "model.weights.h5" in str(info.value)
    assert "tensors in the file that the model has no variable for" in str(info.value)


def test_hidden_size_mismatch_names_the_variable_and_both_shapes(preset):
    _edit_config(preset, hidden_dim=16, num_heads=2)
    with pytest.raises(ValueError) as info:
        UniLMv2Backbone.from_preset(preset)
    assert (
        "variable `token_embedding/embeddings` has shape (120, 16) in the model "
        "but (120, 32) in the file"
    ) in str(info.value)


def test_truncated_config_and_weights_name_the_file(preset, tmp_path):
    broken = os.path.join(tmp_path, "broken")
    shutil.copytree(preset, broken)
    config = os.path.join(broken, "config.json")
    text = open(config).read()
    open(config, "w").write(text[: len(text) // 2])
    with pytest.raises(ValueError, match="is not valid JSON") as info:
        UniLMv2Backbone.from_preset(broken)
    assert config in str(info.value)
    # A truncated weights file: without a recorded checksum the HDF5 read
    # fails, and names the file.
    open(config, "w").write(text)
    weights = os.path.join(broken, "model.weights.h5")
    data = open(weights, "rb").read()
    open(weights, "wb").write(data[: len(data) // 3])
    with pytest.raises(ValueError, match="corrupted") as info:
        UniLMv2Backbone.from_preset(broken)
    assert weights in str(info.value)
    metadata = os.path.join(broken, "metadata.json")
    kept = json.load(open(metadata))
    del kept["weights_sha256"]
    json.dump(kept, open(metadata, "w"))
    with pytest.raises(ValueError, match="cannot be read as HDF5") as info:
        UniLMv2Backbone.from_preset(broken)
    assert weights in str(info.value)


def test_missing_weights_file_is_named(preset):
    os.remove(os.path.join(preset, "model.weights.h5"))
    with pytest.raises(ValueError, match="does not exist") as info:
        UniLMv2Backbone.from_preset(preset)
    assert os.path.join(preset, "model.weights.h5") in str(info.value)
    assert "model.weights.json" not in str(info.value)
    # Without weights it still builds.
    assert UniLMv2Backbone.from_preset(preset, load_weights=False).num_layers == 2


def test_task_from_a_backbone_only_preset_fits_its_default_preprocessor(preset):
    # The class default (512) exceeds this preset's 64-row position table.
    task = UniLMv2TextClassifier.from_preset(preset, num_classes=2)
    assert task.preprocessor.sequence_length == 64
    assert task.predict(["the quick brown fox"], verbose=0).shape == (1, 2)


def test_json_writes_are_atomic_and_a_failed_write_keeps_the_old_file(tmp_path):
    path = os.path.join(tmp_path, "state.json")
    preset_utils.write_json_atomically(path, {"step": 1})
    preset_utils.write_json_atomically(path, {"step": 2})
    with open(path) as f:
        assert json.load(f) == {"step": 2}
    with pytest.raises(TypeError):  # Not serializable: fails mid-write.
        preset_utils.write_json_atomically(path, {"step": 3, "bad": object()})
    with open(path) as f:
        assert json.load(f) == {"step": 2}
    assert os.listdir(tmp_path) == ["state.json"]  # No temporary file left.
