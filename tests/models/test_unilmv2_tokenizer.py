"""Tests for `UniLMv2Tokenizer`.

They run unchanged on the TensorFlow, JAX and PyTorch backends: eager calls
take keras-hub's pure-Python path on every backend, and the `tf.data` tests
check that the TensorFlow path gives the same ids.
"""

import json
import pathlib
import re

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# A small hand-made vocabulary for cased/uncased and normalization checks.
# Ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then the words below.
SMALL_VOCAB = SPECIALS + [
    "the",  # 5
    "The",  # 6
    "cafe",  # 7
    "café",  # 8 (NFC, as typed)
    "Café",  # 9
    "straße",  # 10
    "strasse",  # 11
    "…",  # 12 (U+2026, one token in BERT vocabularies)
    ".",  # 13
    "##s",  # 14
    "cat",  # 15
    "ab",  # 16
    "##cd",  # 17
    "cd",  # 18
    "σοφος",  # 19 (ends in a final sigma, as `str.lower()` writes it)
    "σοφοσ",  # 20 (plain sigma at the end, as case folding writes it)
]


def as_list(x):
    """Nested Python lists of ints/strs from any tokenizer output."""
    if isinstance(x, (list, tuple)):
        return [as_list(item) for item in x]
    if isinstance(x, tf.RaggedTensor):
        x = x.to_list()
        return as_list(x)
    if isinstance(x, bytes):
        return x.decode("utf-8")
    if isinstance(x, (str, int)):
        return x
    if isinstance(x, tf.Tensor):
        return as_list(np.asarray(x.numpy()).tolist())
    return as_list(np.asarray(keras.ops.convert_to_numpy(x)).tolist())


def without_name(config):
    """A layer config without its (auto-numbered) `name`."""
    return {key: value for key, value in config.items() if key != "name"}


def tf_data_map(layer_fn, inputs, batch_size=None):
    """Run `layer_fn` inside `tf.data.Dataset.map` and collect the results."""
    ds = tf.data.Dataset.from_tensor_slices(inputs)
    if batch_size:
        ds = ds.batch(batch_size)
    ds = ds.map(layer_fn)
    outputs = []
    for element in ds:
        if batch_size:
            outputs.extend(as_list(element))
        else:
            outputs.append(as_list(element))
    return outputs


@pytest.fixture(scope="module")
def reference(fixture_dir):
    with open(fixture_dir / "tokenizer.json", encoding="utf-8") as file:
        return json.load(file)


@pytest.fixture(scope="module")
def vocab_path(fixture_dir):
    return str(fixture_dir / "vocab.txt")


@pytest.fixture(scope="module")
def tokenizer(vocab_path):
    return UniLMv2Tokenizer(vocabulary=vocab_path)


def test_reference_fixture_settings(reference, fixture_dir):
    # The fixture was made with the uncased vocabulary next to it.
    assert reference["vocab_file"] == "vocab.txt"
    assert reference["do_lower_case"] is True
    assert len(reference["cases"]) == 6


@pytest.mark.parametrize("case_index", range(6))
def test_ids_and_tokens_match_reference(
    reference, tokenizer, vocab_path, case_index
):
    case = reference["cases"][case_index]
    ids = tokenizer(case["text"])
    assert as_list(ids) == case["ids"]
    assert keras.ops.convert_to_numpy(ids).dtype == np.int32
    string_tokenizer = UniLMv2Tokenizer(vocabulary=vocab_path, dtype="string")
    assert as_list(string_tokenizer(case["text"])) == case["tokens"]


def test_batch_matches_reference(reference, tokenizer):
    texts = [case["text"] for case in reference["cases"]]
    expected = [case["ids"] for case in reference["cases"]]
    assert as_list(tokenizer(texts)) == expected
    # A NumPy array of strings and an eager tf string tensor work too.
    assert as_list(tokenizer(np.array(texts))) == expected
    assert as_list(tokenizer(tf.constant(texts))) == expected
    # Scalars and rank-2 batches of every kind.
    for scalar in (texts[0], texts[0].encode(), np.array(texts[0])):
        assert as_list(tokenizer(scalar)) == expected[0]
    assert as_list(tokenizer(tf.constant(texts[0]))) == expected[0]
    grid = [texts[:3], texts[3:]]
    grid_ids = [expected[:3], expected[3:]]
    assert as_list(tokenizer(grid)) == grid_ids
    assert as_list(tokenizer(np.array(grid))) == grid_ids
    assert as_list(tokenizer(tf.constant(grid))) == grid_ids
    assert as_list(tokenizer(tf.ragged.constant([texts[:2], texts[2:]]))) == [
        expected[:2],
        expected[2:],
    ]


def test_sequence_length_pads_and_truncates(reference, vocab_path):
    tokenizer = UniLMv2Tokenizer(vocabulary=vocab_path, sequence_length=8)
    texts = [case["text"] for case in reference["cases"]]
    expected = [(c["ids"] + [0] * 8)[:8] for c in reference["cases"]]
    outputs = tokenizer(texts)
    assert keras.ops.convert_to_numpy(outputs).shape == (6, 8)
    assert as_list(outputs) == expected


def test_tf_data_map_equals_eager(reference, tokenizer, vocab_path):
    texts = [case["text"] for case in reference["cases"]]
    # Extra strings exercise the normalization steps of the TF path.
    texts += [
        "Ca\u0301fe\u0301 \u2026 \u00a0 cat\u200bs \x07 CAT\tS\n",
        "The [MASK] sat[SEP] on the MAT.",
    ]
    eager = [as_list(tokenizer(text)) for text in texts]
    assert eager[:6] == [case["ids"] for case in reference["cases"]]
    # Scalar elements (dense output per element) and batches (ragged).
    assert tf_data_map(tokenizer, texts) == eager
    assert tf_data_map(tokenizer, texts, batch_size=3) == eager
    # Dense output with `sequence_length`.
    padded = UniLMv2Tokenizer(vocabulary=vocab_path, sequence_length=6)
    expected = [(ids + [0] * 6)[:6] for ids in eager]
    assert as_list(padded(texts)) == expected
    assert tf_data_map(padded, texts, batch_size=4) == expected


def test_docstring_example():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += ["the", "quick", "brown", "fox", "jump", "##ed", "."]
    tokenizer = UniLMv2Tokenizer(vocabulary=vocab)
    assert as_list(tokenizer("The quick brown fox jumped.")) == [
        5, 6, 7, 8, 9, 10, 11,
    ]
    assert as_list(tokenizer(["The fox jumped.", "The quick fox."])) == [
        [5, 8, 9, 10, 11],
        [5, 6, 8, 11],
    ]
    padded = UniLMv2Tokenizer(vocabulary=vocab, sequence_length=8)
    assert as_list(padded(["The fox jumped."])) == [[5, 8, 9, 10, 11, 0, 0, 0]]
    special = UniLMv2Tokenizer(vocabulary=vocab, special_tokens_in_strings=True)
    assert as_list(special("The [MASK] fox.")) == [5, 4, 8, 11]
    assert tokenizer.detokenize([5, 6, 8, 9, 10]) == "the quick fox jumped"


def test_special_token_ids(tokenizer):
    # Ids from the fixture README's table of special tokens.
    assert tokenizer.pad_token_id == 0
    assert tokenizer.unk_token_id == 5
    assert tokenizer.cls_token_id == 6
    assert tokenizer.sep_token_id == 7
    assert tokenizer.mask_token_id == 8
    assert tokenizer.start_token_id == tokenizer.cls_token_id
    assert tokenizer.end_token_id == tokenizer.sep_token_id
    assert tokenizer.pad_token == "[PAD]"
    assert tokenizer.mask_token == "[MASK]"
    assert sorted(tokenizer.special_token_ids) == [0, 5, 6, 7, 8]
    assert sorted(tokenizer.special_tokens) == sorted(SPECIALS)
    assert tokenizer.vocabulary_size() == 120
    assert tokenizer.token_to_id("[MASK]") == 8
    assert tokenizer.id_to_token(7) == "[SEP]"


def test_special_token_ids_follow_the_vocabulary():
    vocab = ["the", "[MASK]", "[SEP]", "[CLS]", "[UNK]", "[PAD]"]
    tokenizer = UniLMv2Tokenizer(vocabulary=vocab)
    assert tokenizer.mask_token_id == 1
    assert tokenizer.sep_token_id == 2
    assert tokenizer.cls_token_id == 3
    assert tokenizer.unk_token_id == 4
    assert tokenizer.pad_token_id == 5
    assert as_list(tokenizer("The xyz")) == [0, 4]


def test_uncased_lowercases_and_strips_accents():
    tokenizer = UniLMv2Tokenizer(vocabulary=SMALL_VOCAB)
    assert tokenizer.do_lower_case is True
    assert tokenizer.do_strip_accents is True
    assert as_list(tokenizer("The THE the")) == [5, 5, 5]
    # "Café" and "café" (NFC or NFD) lose the accent: "cafe".
    assert as_list(tokenizer("Café café cafe\u0301 CAFE")) == [7, 7, 7, 7]
    # "Cats" -> "cat" "##s".
    assert as_list(tokenizer("Cats")) == [15, 14]


def test_cased_keeps_case_and_accents():
    tokenizer = UniLMv2Tokenizer(vocabulary=SMALL_VOCAB, lowercase=False)
    assert tokenizer.do_lower_case is False
    assert tokenizer.do_strip_accents is False
    assert as_list(tokenizer("The the THE")) == [6, 5, 1]
    assert as_list(tokenizer("Café café cafe")) == [9, 8, 7]
    assert as_list(tokenizer("Cats cats")) == [1, 15, 14]
    # The two settings are independent.
    accentless = UniLMv2Tokenizer(
        vocabulary=SMALL_VOCAB, lowercase=False, strip_accents=True
    )
    assert as_list(accentless("Café café")) == [1, 7]


@pytest.mark.parametrize("lowercase", [True, False])
def test_bert_normalization_rather_than_case_folding(lowercase):
    """Text is normalized as by the BERT/UniLM basic tokenizer.

    keras-hub's own lowercasing is NFKC case folding, which would give
    "strasse", split "…" into "." pieces and keep a final sigma apart; the
    reference lowercases with `str.lower()`.
    """
    tokenizer = UniLMv2Tokenizer(vocabulary=SMALL_VOCAB, lowercase=lowercase)
    cases = [
        # (text, uncased ids, cased ids)
        ("straße", [10], [10]),
        ("the…", [5, 12], [5, 12]),
        # A no-break space and an em space split words like a space.
        ("ab\u00a0cd\u2003the", [16, 18, 5], [16, 18, 5]),
        # Control and format characters (zero-width space, soft hyphen,
        # BEL, NUL, U+FFFD) are deleted, so the word stays whole.
        ("ab\u200bcd", [16, 17], [16, 17]),
        ("a\u00adb\x07c\x00d\ufffd", [16, 17], [16, 17]),
        # Tab, newline, carriage return and line separator split words.
        ("ab\tcd\nthe\rcat\u2028the", [16, 18, 5, 15, 5], [16, 18, 5, 15, 5]),
        # Python's lowercasing gives a final sigma.
        ("ΣΟΦΟΣ", [19], [1]),
    ]
    for text, uncased_ids, cased_ids in cases:
        expected = uncased_ids if lowercase else cased_ids
        assert as_list(tokenizer(text)) == expected, text
    texts = [text for text, _, _ in cases]
    eager = [as_list(tokenizer(text)) for text in texts]
    assert tf_data_map(tokenizer, texts) == eager


def test_special_tokens_in_strings():
    tokenizer = UniLMv2Tokenizer(
        vocabulary=SMALL_VOCAB, special_tokens_in_strings=True
    )
    text = "The [MASK] cat[SEP]Café"
    expected = [5, 4, 15, 3, 7]
    assert as_list(tokenizer(text)) == expected
    assert tf_data_map(tokenizer, [text, "[CLS] the"]) == [expected, [2, 5]]
    assert tf_data_map(tokenizer, [text, "[CLS] the"], batch_size=2) == [
        expected,
        [2, 5],
    ]
    # Without the option, "[MASK]" is ordinary text: "[", "mask", "]".
    plain = UniLMv2Tokenizer(vocabulary=SMALL_VOCAB)
    assert as_list(plain("[MASK]")) == [1, 1, 1]


def test_vocabulary_from_list_equals_file(vocab_path, reference, tmp_path):
    with open(vocab_path, encoding="utf-8") as file:
        tokens = [line.rstrip("\n") for line in file]
    from_file = UniLMv2Tokenizer(vocabulary=vocab_path)
    from_list = UniLMv2Tokenizer(vocabulary=tokens)
    from_tuple = UniLMv2Tokenizer(vocabulary=tuple(tokens))
    from_path = UniLMv2Tokenizer(vocabulary=pathlib.Path(vocab_path))
    assert from_file.get_vocabulary() == tokens
    for other in (from_list, from_tuple, from_path):
        assert other.get_vocabulary() == tokens
        assert without_name(other.get_config()) == without_name(
            from_file.get_config()
        )
    texts = [case["text"] for case in reference["cases"]]
    expected = as_list(from_file(texts))
    for other in (from_list, from_tuple, from_path):
        assert as_list(other(texts)) == expected
    # Windows line ends are read the same way.
    crlf = tmp_path / "vocab_crlf.txt"
    crlf.write_bytes("\r\n".join(tokens).encode("utf-8") + b"\r\n")
    assert UniLMv2Tokenizer(vocabulary=str(crlf)).get_vocabulary() == tokens


@pytest.mark.parametrize("missing", SPECIALS)
def test_missing_special_token_raises(missing, tmp_path):
    vocab = [token for token in SMALL_VOCAB if token != missing]
    with pytest.raises(ValueError, match=re.escape(f"Missing: ['{missing}']")):
        UniLMv2Tokenizer(vocabulary=vocab)
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"Missing: ['{missing}']")):
        UniLMv2Tokenizer(vocabulary=str(path))


def test_all_missing_special_tokens_are_named():
    with pytest.raises(ValueError) as info:
        UniLMv2Tokenizer(vocabulary=["the", "[UNK]", "cat"])
    message = str(info.value)
    assert "`vocabulary`" in message
    for token in ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]:
        assert token in message
    assert "3 tokens" in message


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="not a file"):
        UniLMv2Tokenizer(vocabulary="/nonexistent/vocab.txt")
    with pytest.raises(TypeError, match="vocabulary"):
        UniLMv2Tokenizer(vocabulary={"[PAD]": 0})
    with pytest.raises(TypeError, match="non-string"):
        UniLMv2Tokenizer(vocabulary=SPECIALS + [7])
    with pytest.raises(TypeError, match="lowercase"):
        UniLMv2Tokenizer(vocabulary=SMALL_VOCAB, lowercase="yes")
    with pytest.raises(TypeError, match="strip_accents"):
        UniLMv2Tokenizer(vocabulary=SMALL_VOCAB, strip_accents=1)
    with pytest.raises(ValueError, match="oov_token"):
        UniLMv2Tokenizer(vocabulary=SMALL_VOCAB, oov_token="<unk>")


def test_no_vocabulary_raises_on_use():
    tokenizer = UniLMv2Tokenizer()
    assert tokenizer.vocabulary is None
    with pytest.raises(ValueError, match="vocabulary"):
        tokenizer("the cat")


@pytest.mark.parametrize("lowercase", [True, False])
def test_get_config_from_config_round_trip(lowercase):
    tokenizer = UniLMv2Tokenizer(
        vocabulary=SMALL_VOCAB,
        lowercase=lowercase,
        sequence_length=7,
        special_tokens_in_strings=True,
    )
    config = tokenizer.get_config()
    # The vocabulary is an asset, not part of the config.
    assert config["vocabulary"] is None
    assert config["lowercase"] is lowercase
    assert config["strip_accents"] is lowercase
    assert config["sequence_length"] == 7
    restored = UniLMv2Tokenizer.from_config(
        {**config, "vocabulary": SMALL_VOCAB}
    )
    assert restored.get_config() == config
    texts = ["The [MASK] Café…", "ΣΟΦΟΣ the cats"]
    assert as_list(restored(texts)) == as_list(tokenizer(texts))
    # Registered under this package's name for Keras serialization.
    serialized = keras.saving.serialize_keras_object(tokenizer)
    assert serialized["registered_name"] == "keras_unilmv2>UniLMv2Tokenizer"
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert type(deserialized) is UniLMv2Tokenizer
    assert deserialized.get_config() == config


@pytest.mark.parametrize("lowercase", [True, False])
def test_save_to_preset_from_preset_round_trip(
    lowercase, vocab_path, reference, tmp_path
):
    # keras-hub picks a preset's tokenizer class through `backbone_cls`.
    backbone_cls = UniLMv2Tokenizer.backbone_cls
    assert backbone_cls is not None
    assert backbone_cls.__name__ == "UniLMv2Backbone"
    tokenizer = UniLMv2Tokenizer(vocabulary=vocab_path, lowercase=lowercase)
    preset_dir = tmp_path / "preset"
    tokenizer.save_to_preset(str(preset_dir))
    # keras-hub's layout: config + vocabulary asset.
    assert (preset_dir / "tokenizer.json").is_file()
    vocab_file = preset_dir / "assets" / "tokenizer" / "vocabulary.txt"
    with open(vocab_path, encoding="utf-8") as file:
        assert vocab_file.read_text(encoding="utf-8") == file.read()
    with open(preset_dir / "tokenizer.json", encoding="utf-8") as file:
        saved = json.load(file)
    assert saved["registered_name"] == "keras_unilmv2>UniLMv2Tokenizer"
    assert saved["config"]["vocabulary"] is None
    assert saved["config"]["lowercase"] is lowercase

    # A preset directory also holds the backbone's config.json; loading a
    # tokenizer reads only its class name.
    backbone_name = keras.saving.get_registered_name(backbone_cls)
    with open(preset_dir / "config.json", "w", encoding="utf-8") as file:
        json.dump({"registered_name": backbone_name, "config": {}}, file)

    restored = UniLMv2Tokenizer.from_preset(str(preset_dir))
    assert type(restored) is UniLMv2Tokenizer
    assert restored.get_config() == tokenizer.get_config()
    assert restored.get_vocabulary() == tokenizer.get_vocabulary()
    assert restored.mask_token_id == 8
    texts = [case["text"] for case in reference["cases"]] + ["Café THE"]
    assert as_list(restored(texts)) == as_list(tokenizer(texts))
    if lowercase:
        expected = [case["ids"] for case in reference["cases"]]
        assert as_list(restored(texts[:6])) == expected
    # keras-hub's base class finds this subclass from the preset too.
    generic = keras_hub.tokenizers.Tokenizer.from_preset(str(preset_dir))
    assert type(generic) is UniLMv2Tokenizer
    assert generic.get_config() == tokenizer.get_config()


def test_save_assets_load_assets(tokenizer, tmp_path):
    tokenizer.save_assets(str(tmp_path))
    assert (tmp_path / "vocabulary.txt").is_file()
    fresh = UniLMv2Tokenizer.from_config(tokenizer.get_config())
    fresh.load_assets(str(tmp_path))
    assert fresh.get_vocabulary() == tokenizer.get_vocabulary()
    assert fresh.cls_token_id == 6


def test_detokenize(tokenizer, reference):
    assert tokenizer.detokenize([15, 18, 104, 46, 106, 11]) == (
        "the cats jumped !"
    )
    batch = [case["ids"] for case in reference["cases"][:2]]
    assert as_list(tokenizer.detokenize(batch)) == [
        "the cat sat on the [UNK] .",
        "the cats jumped !",
    ]
    # Round trip through tokenize for text the vocabulary covers.
    ids = tokenizer("Three small dogs.")
    assert tokenizer.detokenize(ids) == "three small dogs ."
    # Inside tf.data the TensorFlow path gives the same strings.
    ds = tf.data.Dataset.from_tensor_slices(
        tf.ragged.constant(batch, dtype="int32")
    ).map(tokenizer.detokenize)
    assert [as_list(x) for x in ds] == [
        "the cat sat on the [UNK] .",
        "the cats jumped !",
    ]
