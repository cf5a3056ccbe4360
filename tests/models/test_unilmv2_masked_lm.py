"""UniLMv2MaskedLM and its preprocessor: reference parity through the tied
LM head, BERT-style masking, written [MASK] tokens, fill-in, training,
saving and errors. Runs unchanged on every Keras backend."""

import copy
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import reference_backbone
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import to_numpy

from keras_unilmv2.models.unilmv2_masked_lm import UniLMv2MaskedLM
from keras_unilmv2.models.unilmv2_masked_lm_preprocessor import (
    UniLMv2MaskedLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

ATOL = 1e-5
CLS, SEP, PAD, MASK, UNK = 6, 7, 0, 8, 5
SPECIAL = {CLS, SEP, PAD, MASK, UNK}
# Fixture vocabulary ids: the 15, a 16, cat 18, dog 19, sat 41, ran 42,
# on 65, big 75, red 77.


def np_tree(structure):
    return keras.tree.map_structure(
        lambda t: np.asarray(t.numpy() if isinstance(t, tf.Tensor) else to_numpy(t)),
        structure,
    )


@pytest.fixture(scope="module")
def mlm_data():
    return np.load(fixture_path("mlm.npz"))


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


@pytest.fixture(scope="module")
def preprocessor(tokenizer):
    return UniLMv2MaskedLMPreprocessor(
        tokenizer, sequence_length=14, mask_selection_length=4
    )


@pytest.fixture(scope="module")
def reference_mlm(preprocessor):
    """The converted reference checkpoint as a masked LM (never trained)."""
    return UniLMv2MaskedLM(reference_backbone(), preprocessor=preprocessor)


def fixture_inputs(data, k=4):
    """Model inputs for mlm.npz: mask_positions from the `masked_positions` flags."""
    flags = data["masked_positions"]
    positions = np.zeros((flags.shape[0], k), "int32")
    for row in range(flags.shape[0]):
        found = np.flatnonzero(flags[row])
        positions[row, : len(found)] = found
    return {
        "token_ids": data["input_ids"],
        "segment_ids": data["token_type_ids"],
        "padding_mask": data["attention_mask"],
        "mask_positions": positions,
    }


def assert_matches_fixture(logits, data, rows=(0, 1, 2)):
    """`logits [B, K, V]` at the masked slots equal the reference logits."""
    for out_row, row in enumerate(rows):
        found = np.flatnonzero(data["masked_positions"][row])
        np.testing.assert_allclose(
            logits[out_row, : len(found)],
            data["logits"][row, found],
            atol=ATOL,
            rtol=0,
            err_msg=f"fixture row {row}",
        )


def fixture_texts(data, tokenizer):
    """mlm.npz rows written back as text with "[MASK]" (row 2 is a pair)."""
    segments = []
    for row, types in zip(data["input_ids"], data["token_type_ids"]):
        parts = [[], []]
        for token_id, segment in zip(row, types):
            if token_id in (CLS, SEP, PAD):
                continue
            token = tokenizer.id_to_token(int(token_id))
            if token.startswith("##"):
                parts[segment][-1] += token[2:]
            else:
                parts[segment].append(token)
        segments.append([" ".join(p) for p in parts])
    return segments


# --- parity with the reference ------------------------------------------------


def test_logits_at_mask_positions_match_reference(reference_mlm, mlm_data):
    x = fixture_inputs(mlm_data)
    preprocessor = reference_mlm.preprocessor
    reference_mlm.preprocessor = None
    try:
        logits = reference_mlm.predict(x, batch_size=3, verbose=0)
    finally:
        reference_mlm.preprocessor = preprocessor
    assert logits.shape == (3, 4, 120)
    assert_matches_fixture(logits, mlm_data)
    # The task adds no weights: it predicts through `backbone.lm_head`.
    assert len(reference_mlm.weights) == len(reference_mlm.backbone.weights)
    assert not reference_mlm.has_task_weights()


def test_fill_mask_on_text_matches_reference(reference_mlm, mlm_data, tokenizer):
    texts = fixture_texts(mlm_data, tokenizer)
    assert texts[0][0] == "the quick fox [MASK] over the [MASK] dog ."
    singles = reference_mlm.fill_mask([t[0] for t in texts[:2]], top_k=3)
    pair = reference_mlm.fill_mask((texts[2][0], texts[2][1]), top_k=3)
    results = singles + [pair]
    for row, masks in enumerate(results):
        found = np.flatnonzero(mlm_data["masked_positions"][row])
        assert len(masks) == len(found)
        for mask, position in zip(masks, found):
            logits = mlm_data["logits"][row, position].astype("float64")
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            best = np.argsort(-probabilities)[:3]
            assert [m["token_id"] for m in mask] == best.tolist()
            assert [m["token"] for m in mask] == [
                tokenizer.id_to_token(int(i)) for i in best
            ]
            np.testing.assert_allclose(
                [m["score"] for m in mask], probabilities[best], atol=ATOL
            )
    # `predict` on raw text reads the written masks too.
    logits = reference_mlm.predict([t[0] for t in texts[:2]], verbose=0)
    assert_matches_fixture(logits, mlm_data, rows=(0, 1))


def test_fill_mask_output_forms(reference_mlm):
    one = reference_mlm.fill_mask("the [MASK] sat on [MASK] .", top_k=2)
    assert len(one) == 2 and all(len(mask) == 2 for mask in one)
    assert one[0][0]["score"] >= one[0][1]["score"]
    batch = reference_mlm.fill_mask(["the [MASK] sat on [MASK] .", ""], top_k=2)
    assert len(batch) == 2 and batch[1] == []
    assert reference_mlm.fill_mask("no mask here") == []
    for a, b in zip(batch[0], one):
        assert [m["token_id"] for m in a] == [m["token_id"] for m in b]


# --- preprocessor -------------------------------------------------------------


def test_training_masks_like_bert(tokenizer):
    # Select every maskable token and always use [MASK]: the output is exact.
    preprocessor = UniLMv2MaskedLMPreprocessor(
        tokenizer,
        sequence_length=10,
        mask_selection_rate=1.0,
        mask_selection_length=6,
        mask_token_rate=1.0,
        random_token_rate=0.0,
    )
    texts = ["the cat sat", "a [MASK] ran"]
    expected_ids = [
        [CLS, MASK, MASK, MASK, SEP] + [PAD] * 5,
        [CLS, MASK, MASK, MASK, SEP] + [PAD] * 5,
    ]
    expected_positions = [[1, 2, 3, 0, 0, 0], [1, 3, 0, 0, 0, 0]]
    expected_labels = [[15, 18, 41, 0, 0, 0], [16, 42, 0, 0, 0, 0]]
    expected_weights = [[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]
    eager = np_tree(preprocessor(texts))
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(preprocessor)
    graph = np_tree(next(iter(ds)))
    for x, y, weights in (eager, graph):
        np.testing.assert_array_equal(x["token_ids"], expected_ids)
        np.testing.assert_array_equal(x["mask_positions"], expected_positions)
        np.testing.assert_array_equal(y, expected_labels)
        np.testing.assert_array_equal(weights, expected_weights)
        np.testing.assert_array_equal(
            x["padding_mask"].astype(int), [[1] * 5 + [0] * 5] * 2
        )


def test_random_masking_is_consistent(preprocessor, tokenizer):
    texts = ["the cat sat on the big red ball", "a dog ran to the park"] * 4
    original = np_tree(
        UniLMv2MaskedLMPreprocessor(tokenizer, sequence_length=14).fill_mask_preprocess(
            texts
        )
    )["token_ids"]
    for x, y, weights in (
        np_tree(preprocessor(texts)),
        np_tree(
            next(
                iter(
                    tf.data.Dataset.from_tensor_slices(texts)
                    .batch(8)
                    .map(preprocessor)
                )
            )
        ),
    ):
        assert x["token_ids"].shape == (8, 14)
        assert x["mask_positions"].shape == y.shape == weights.shape == (8, 4)
        assert weights.sum() > 0
        for row in range(8):
            count = int(weights[row].sum())
            assert np.all(weights[row, count:] == 0)
            positions = x["mask_positions"][row, :count]
            assert len(set(positions.tolist())) == count
            np.testing.assert_array_equal(y[row, :count], original[row, positions])
            assert not SPECIAL & set(original[row, positions].tolist())
            unmasked = np.setdiff1d(np.arange(14), positions)
            np.testing.assert_array_equal(
                x["token_ids"][row, unmasked], original[row, unmasked]
            )


@pytest.mark.parametrize("special_tokens_in_strings", [False, True])
def test_written_masks_are_kept(special_tokens_in_strings):
    tokenizer = UniLMv2Tokenizer(
        vocabulary=fixture_path("vocab.txt"),
        special_tokens_in_strings=special_tokens_in_strings,
    )
    preprocessor = UniLMv2MaskedLMPreprocessor(
        tokenizer, sequence_length=12, mask_selection_length=3
    )
    texts = ["[MASK] cat[MASK] sat", "The DOG [MASK]", "no mask", ""]
    expected_ids = [
        [CLS, MASK, 18, MASK, 41, SEP] + [PAD] * 6,
        [CLS, 15, 19, MASK, SEP] + [PAD] * 7,
        [CLS, UNK, UNK, SEP] + [PAD] * 8,
        [CLS, SEP] + [PAD] * 10,
    ]
    expected_positions = [[1, 3, 0], [3, 0, 0], [0, 0, 0], [0, 0, 0]]
    eager = np_tree(preprocessor.fill_mask_preprocess(texts))
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(4)
    graph = np_tree(next(iter(ds.map(preprocessor.fill_mask_preprocess))))
    for x in (eager, graph):
        np.testing.assert_array_equal(x["token_ids"], expected_ids)
        np.testing.assert_array_equal(x["mask_positions"], expected_positions)
        np.testing.assert_array_equal(x["segment_ids"], np.zeros((4, 12)))
    single = np_tree(preprocessor.fill_mask_preprocess("The DOG [MASK]"))
    np.testing.assert_array_equal(single["token_ids"], expected_ids[1])
    np.testing.assert_array_equal(single["mask_positions"], [3, 0, 0])
    pair = np_tree(preprocessor.fill_mask_preprocess(("a [MASK]", "[MASK] dog")))
    np.testing.assert_array_equal(
        pair["token_ids"], [CLS, 16, MASK, SEP, MASK, 19, SEP] + [PAD] * 5
    )
    np.testing.assert_array_equal(pair["segment_ids"], [0] * 4 + [1] * 3 + [0] * 5)
    np.testing.assert_array_equal(pair["mask_positions"], [2, 4, 0])


def test_preprocessor_errors(preprocessor, tokenizer):
    with pytest.raises(ValueError, match="3 \\[MASK\\] tokens.*mask_selection_length=2"):
        UniLMv2MaskedLMPreprocessor(
            tokenizer, sequence_length=12, mask_selection_length=2
        ).fill_mask_preprocess("[MASK] [MASK] [MASK]")
    with pytest.raises(ValueError, match="sequence_length=6"):
        UniLMv2MaskedLMPreprocessor(tokenizer, sequence_length=6).fill_mask_preprocess(
            "the cat sat on the [MASK]"
        )
    with pytest.raises(ValueError, match="`y` and `sample_weight` must be None"):
        preprocessor(["the cat"], y=[1])
    with pytest.raises(ValueError, match="3 segments"):
        preprocessor(("a", "b", "c"))
    with pytest.raises(ValueError, match="3 segments"):
        preprocessor.fill_mask_preprocess(("a", "b", "c"))
    with pytest.raises(ValueError, match="mask_selection_rate=1.5"):
        UniLMv2MaskedLMPreprocessor(tokenizer, mask_selection_rate=1.5)
    with pytest.raises(ValueError, match="mask_selection_length=0"):
        UniLMv2MaskedLMPreprocessor(tokenizer, mask_selection_length=0)
    with pytest.raises(ValueError, match="mask_token_rate \\+ random_token_rate"):
        UniLMv2MaskedLMPreprocessor(
            tokenizer, mask_token_rate=0.9, random_token_rate=0.2
        )


def test_task_errors(reference_mlm):
    for top_k in (0, 121, 2.0):
        with pytest.raises(ValueError, match=f"top_k={top_k!r}"):
            reference_mlm.fill_mask("the [MASK]", top_k=top_k)
    bare = UniLMv2MaskedLM(reference_backbone(), preprocessor=None)
    with pytest.raises(ValueError, match="needs a preprocessor"):
        bare.fill_mask("the [MASK]")
    with pytest.raises(ValueError, match="lm_head"):
        UniLMv2MaskedLM(keras.Model(), preprocessor=None)


# --- training -------------------------------------------------------------------


def test_learns_from_raw_text(tokenizer):
    keras.utils.set_random_seed(0)
    preprocessor = UniLMv2MaskedLMPreprocessor(
        tokenizer, sequence_length=10, mask_selection_rate=0.3,
        mask_selection_length=3,
    )
    model = UniLMv2MaskedLM(tiny_backbone(dropout=0.0), preprocessor=preprocessor)
    model.compile(optimizer=keras.optimizers.Adam(1e-2, clipnorm=1.0))
    bias_before = np.array(to_numpy(model.backbone.lm_head.output_bias))
    texts = ["the cat sat on the big red ball", "a dog ran to the park"] * 8
    history = model.fit(texts, batch_size=8, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.75 * losses[0], losses
    accuracy = history.history["sparse_categorical_accuracy"]
    assert accuracy[-1] > accuracy[0]
    # Preprocessed arrays train as well.
    x, y, weights = np_tree(preprocessor(texts))
    model.preprocessor = None
    history = model.fit(x, y, sample_weight=weights, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # The pretrained head (`backbone.lm_head`) is the one being trained.
    bias_after = to_numpy(model.backbone.lm_head.output_bias)
    assert np.abs(bias_after - bias_before).max() > 1e-3


# --- serialization and presets ---------------------------------------------------


def test_get_config_round_trip(reference_mlm):
    config = reference_mlm.get_config()
    restored = UniLMv2MaskedLM.from_config(copy.deepcopy(config))
    assert restored.get_config() == config
    assert restored.preprocessor.mask_selection_length == 4


def test_keras_file_and_preset_round_trips(
    reference_mlm, mlm_data, tokenizer, tmp_path
):
    x = fixture_inputs(mlm_data)

    path = os.path.join(tmp_path, "masked_lm.keras")
    reference_mlm.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, UniLMv2MaskedLM)
    restored.preprocessor = None
    assert_matches_fixture(restored.predict(x, batch_size=3, verbose=0), mlm_data)

    preset = os.path.join(tmp_path, "preset")
    reference_mlm.save_to_preset(preset)
    assert os.path.exists(os.path.join(preset, "task.json"))
    # No weights of its own: the LM head is saved with the backbone.
    assert not os.path.exists(os.path.join(preset, "task.weights.h5"))
    import keras_hub

    loaded = keras_hub.models.MaskedLM.from_preset(preset)
    assert isinstance(loaded, UniLMv2MaskedLM)
    assert isinstance(loaded.preprocessor, UniLMv2MaskedLMPreprocessor)
    for a, b in zip(loaded.get_weights(), reference_mlm.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        to_numpy(loaded.backbone.lm_head.output_bias),
        to_numpy(reference_mlm.backbone.lm_head.output_bias),
    )

    # A converted checkpoint (backbone + tokenizer only) fills in masks as is.
    backbone_preset = os.path.join(tmp_path, "backbone")
    reference_mlm.backbone.save_to_preset(backbone_preset)
    tokenizer.save_to_preset(backbone_preset)
    converted = UniLMv2MaskedLM.from_preset(backbone_preset)
    assert isinstance(converted.preprocessor, UniLMv2MaskedLMPreprocessor)
    for a, b in zip(converted.get_weights(), reference_mlm.get_weights()):
        np.testing.assert_array_equal(a, b)
