"""tools/pack_preset.py: float16 storage of a preset's weights, nothing lost."""

import json
import os
import sys

import h5py
import keras
import numpy as np
import pytest

from keras_unilmv2 import UniLMv2Backbone

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import pack_preset  # noqa: E402

TINY = os.path.join(REPO, "presets", "unilmv2_tiny_en_uncased")


def _inputs():
    token_ids = np.array([[2, 50, 61, 70, 80, 3, 0, 0], [2, 90, 91, 3, 0, 0, 0, 0]], "int32")
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": (token_ids > 0).astype("int32"),
    }


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    destination = str(tmp_path_factory.mktemp("packed") / "tiny16")
    figures = tmp_path_factory.mktemp("figures") / "figures.json"
    figures.write_text(json.dumps({"ae_accuracy": 0.5}))
    pack_preset.main([
        TINY, destination, "--training-file", "history.csv",
        "--record", f"measured={figures}",
    ])
    return destination


def test_weights_are_float16_and_round_to_the_originals(packed):
    with h5py.File(os.path.join(TINY, "model.weights.h5")) as a, h5py.File(
        os.path.join(packed, "model.weights.h5")
    ) as b:
        names = []
        a.visititems(lambda n, item: names.append(n) if isinstance(item, h5py.Dataset) else None)
        assert names
        for name in names:
            original, stored = a[name][()], b[name][()]
            assert stored.shape == original.shape, name
            if original.dtype == np.float32:
                assert stored.dtype == np.float16, name
                np.testing.assert_allclose(stored, original, rtol=1e-3, atol=1e-4, err_msg=name)
            else:
                np.testing.assert_array_equal(stored, original, err_msg=name)
    assert os.path.getsize(os.path.join(packed, "model.weights.h5")) < 0.6 * os.path.getsize(
        os.path.join(TINY, "model.weights.h5")
    )


def test_packed_preset_loads_in_float32_and_computes_the_same(packed):
    original = UniLMv2Backbone.from_preset(TINY)
    loaded = UniLMv2Backbone.from_preset(packed)
    assert {v.dtype for v in loaded.weights} == {"float32"}
    a = keras.ops.convert_to_numpy(original(_inputs())["sequence_output"])
    b = keras.ops.convert_to_numpy(loaded(_inputs())["sequence_output"])
    assert not np.array_equal(a, b)  # the weights were rounded ...
    np.testing.assert_allclose(b, a, atol=2e-2)  # ... by float16's 3 digits


def test_metadata_records_storage_checksum_and_figures(packed):
    with open(os.path.join(packed, "metadata.json")) as f:
        metadata = json.load(f)
    storage = metadata["weights_storage"]
    assert storage["dtype"] == "float16"
    assert 0 < storage["max_abs_rounding_error"] < 1e-2
    assert storage["packed_by"].startswith("python tools/pack_preset.py ")
    assert metadata["measured"] == {"ae_accuracy": 0.5}
    assert set(metadata["weights_sha256"]) == {"model.weights.h5"}
    # Only the named training files travel; the original's command stays.
    assert os.listdir(os.path.join(packed, "training")) == ["history.csv"]
    with open(os.path.join(TINY, "metadata.json")) as f:
        assert metadata["command"] == json.load(f)["command"]


def test_refuses_to_overwrite_or_bad_arguments(packed, tmp_path):
    before = os.path.getmtime(os.path.join(packed, "model.weights.h5"))
    with pytest.raises(ValueError, match="exists"):
        pack_preset.pack(TINY, packed)
    assert os.path.getmtime(os.path.join(packed, "model.weights.h5")) == before
    with pytest.raises(ValueError, match="weights_dtype"):
        pack_preset.pack(TINY, str(tmp_path / "x"), weights_dtype="int8")
    with pytest.raises(ValueError, match="not a preset folder"):
        pack_preset.pack(str(tmp_path), str(tmp_path / "y"))
    with pytest.raises(ValueError, match="--training-file"):
        pack_preset.pack(TINY, str(tmp_path / "z"), training_files=["missing.csv"])
    assert not os.path.exists(tmp_path / "z")
    assert not os.path.exists(str(tmp_path / "z") + ".partial")
    with pytest.raises(ValueError, match="KEY=JSON_FILE"):
        pack_preset._parse_records(["no-equals-sign"])
