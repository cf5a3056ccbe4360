"""The raw-checkpoint converter: formats, the command line, and every error."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2 import conversion as cc
from unilmv2_test_utils import FIXTURE_DIR
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import reference_backbone
from unilmv2_test_utils import reference_inputs
from unilmv2_test_utils import to_numpy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _raw_state():
    return cc.load_state_dict(fixture_path("model.bin"))


def _fresh_backbone():
    return UniLMv2Backbone(**cc.backbone_kwargs_from_config(fixture_path("config.json")))


def _encode(backbone):
    data = np.load(fixture_path("encoder.npz"))
    return to_numpy(backbone(reference_inputs(data, "batch_a/"))["sequence_output"])


def _split_qkv(state, hidden=32, key_bias=0.0):
    """The same weights in the split `query/key/value` layout."""
    split = {}
    for key, value in state.items():
        if key.endswith("qkv_linear.weight"):
            prefix = key[: -len("qkv_linear.weight")]
            q, k, v = np.split(value, 3, axis=0)
            split[prefix + "query.weight"] = q
            split[prefix + "key.weight"] = k
            split[prefix + "value.weight"] = v
            split[prefix + "key.bias"] = np.full((hidden,), key_bias, "float32")
        elif key.endswith("q_bias"):
            split[key[: -len("q_bias")] + "query.bias"] = value.reshape(-1)
        elif key.endswith("v_bias"):
            split[key[: -len("v_bias")] + "value.bias"] = value.reshape(-1)
        else:
            split[key] = value
    return split


def test_fused_and_split_layouts_convert_identically():
    fused = _fresh_backbone()
    cc.convert_state_dict(_raw_state(), fused)
    split = _fresh_backbone()
    # A key bias is provably irrelevant (softmax cancels it): even a non-zero
    # one converts to the same model.
    state = _split_qkv(_raw_state(), key_bias=0.3)
    state["bert.rel_pos_bias.weight"] = state.pop("bert.encoder.rel_pos_bias.weight")
    cc.convert_state_dict(state, split)
    np.testing.assert_allclose(_encode(fused), _encode(split), atol=1e-5)
    expected = np.load(fixture_path("encoder.npz"))["batch_a/sequence_output"]
    np.testing.assert_allclose(_encode(split), expected, atol=1e-5)


def test_every_tensor_lands_in_the_right_place():
    backbone = _fresh_backbone()
    state = _raw_state()
    cc.convert_state_dict(state, backbone)
    qkv = state["bert.encoder.layer.1.attention.self.qkv_linear.weight"]
    attention = backbone.transformer_layers[1].self_attention
    np.testing.assert_array_equal(to_numpy(attention.query_dense.kernel), qkv[:32].T)
    np.testing.assert_array_equal(to_numpy(attention.key_dense.kernel), qkv[32:64].T)
    np.testing.assert_array_equal(to_numpy(attention.value_dense.kernel), qkv[64:].T)
    np.testing.assert_array_equal(
        to_numpy(attention.value_dense.bias),
        state["bert.encoder.layer.1.attention.self.v_bias"].reshape(-1),
    )
    np.testing.assert_array_equal(
        to_numpy(backbone.relative_position_bias.bias_table),
        state["bert.encoder.rel_pos_bias.weight"].T,
    )
    np.testing.assert_array_equal(
        to_numpy(backbone.lm_head.output_bias), state["cls.predictions.bias"]
    )


def test_safetensors_checkpoint(tmp_path):
    from safetensors.numpy import save_file

    path = os.path.join(tmp_path, "model.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in _raw_state().items()}, path)
    backbone = _fresh_backbone()
    cc.convert_state_dict(cc.load_state_dict(path), backbone)
    np.testing.assert_allclose(_encode(backbone), _encode(reference_backbone()), atol=1e-6)


def test_missing_tensor_is_an_error():
    state = _raw_state()
    del state["bert.encoder.layer.1.output.dense.bias"]
    with pytest.raises(ValueError, match="bert.encoder.layer.1.output.dense.bias"):
        cc.convert_state_dict(state, _fresh_backbone())


def test_unused_tensor_is_an_error():
    state = _raw_state()
    state["cls.seq_relationship.weight"] = np.zeros((2, 32), "float32")
    with pytest.raises(ValueError, match="cls.seq_relationship.weight"):
        cc.convert_state_dict(state, _fresh_backbone())


def test_missing_pooler_needs_explicit_permission():
    state = _raw_state()
    del state["bert.pooler.dense.weight"], state["bert.pooler.dense.bias"]
    with pytest.raises(ValueError, match="allow-missing-pooler"):
        cc.convert_state_dict(state, _fresh_backbone())
    report = cc.convert_state_dict(state, _fresh_backbone(), allow_missing_pooler=True)
    assert report == {
        "pooler": "initialized", "relative_bias": "converted", "lm_head": "converted"
    }


def _bert_layout(state):
    """A Hugging Face BERT file: no `bert.` prefix, split q/k/v, a
    `position_ids` buffer, no relative bias and no MLM head."""
    bert = {}
    for key, value in _split_qkv(state).items():
        if "rel_pos_bias" in key or key.startswith("cls."):
            continue
        bert[key[len("bert."):] if key.startswith("bert.") else key] = value
    bert["embeddings.position_ids"] = np.arange(64, dtype="int64")[None]
    return bert


def test_bert_layout_encoder_without_head_or_relative_bias():
    state = _raw_state()
    bert = _bert_layout(state)
    with pytest.raises(ValueError, match="initialize-lm-head"):
        cc.convert_state_dict(bert, _fresh_backbone(), initialize_relative_bias=True)
    with pytest.raises(ValueError, match="initialize-relative-bias"):
        cc.convert_state_dict(bert, _fresh_backbone(), initialize_lm_head=True)
    backbone = _fresh_backbone()
    head = backbone.lm_head
    own_weights = [head.transform_dense.kernel, head.transform_dense.bias, head.output_bias]
    head_before = [to_numpy(w).copy() for w in own_weights]
    report = cc.convert_state_dict(
        bert, backbone, initialize_lm_head=True, initialize_relative_bias=True
    )
    assert report == {
        "relative_bias": "initialized", "pooler": "converted", "lm_head": "initialized"
    }
    # The relative bias starts at zero: the model computes what the
    # checkpoint's plain BERT computes (here: the reference minus its bias).
    table = to_numpy(backbone.relative_position_bias.bias_table)
    np.testing.assert_array_equal(table, np.zeros_like(table))
    without_bias = _fresh_backbone()
    zeroed = dict(state)
    zeroed["bert.encoder.rel_pos_bias.weight"] = np.zeros_like(
        state["bert.encoder.rel_pos_bias.weight"]
    )
    cc.convert_state_dict(zeroed, without_bias)
    np.testing.assert_allclose(_encode(backbone), _encode(without_bias), atol=1e-5)
    # The head keeps its fresh initialization (its output weight is the
    # converted word embedding table, tied).
    for before, after in zip(head_before, own_weights):
        np.testing.assert_array_equal(before, to_numpy(after))


def test_untied_decoder_is_refused_and_tied_one_accepted():
    state = _raw_state()
    state["cls.predictions.decoder.weight"] = state[
        "bert.embeddings.word_embeddings.weight"
    ].copy()
    cc.convert_state_dict(state, _fresh_backbone())
    state["cls.predictions.decoder.weight"][0, 0] += 1.0
    with pytest.raises(ValueError, match="ties"):
        cc.convert_state_dict(state, _fresh_backbone())


def test_config_mismatch_is_a_shape_error():
    config = json.load(open(fixture_path("config.json")))
    config["intermediate_size"] = 48
    backbone = UniLMv2Backbone(**cc.backbone_kwargs_from_config(config))
    with pytest.raises(ValueError, match=r"intermediate.dense.weight.*\(32, 48\)"):
        cc.convert_state_dict(_raw_state(), backbone)


def test_relative_bias_config_mismatch():
    config = json.load(open(fixture_path("config.json")))
    del config["rel_pos_bins"]  # s2s-ft reads this as "no relative bias"
    backbone = UniLMv2Backbone(**cc.backbone_kwargs_from_config(config))
    assert backbone.relative_position_bias is None
    with pytest.raises(ValueError, match="turns the bias off"):
        cc.convert_state_dict(_raw_state(), backbone)


def test_corrupt_checkpoint(tmp_path):
    path = os.path.join(tmp_path, "broken.bin")
    with open(fixture_path("model.bin"), "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match="weights_only"):
        cc.load_state_dict(path)
    with pytest.raises(ValueError, match="not a file"):
        cc.load_state_dict(os.path.join(tmp_path, "absent.bin"))


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path):
    path = os.path.join(tmp_path, "evil.bin")
    torch.save({"weight": torch.zeros(2), "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="pickled code"):
        cc.load_state_dict(path)


def test_bad_config():
    with pytest.raises(ValueError, match="hidden_size"):
        cc.backbone_kwargs_from_config({"vocab_size": 10})
    config = json.load(open(fixture_path("config.json")))
    config["hidden_act"] = "relu"
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        cc.backbone_kwargs_from_config(config)


def _run_tool(*args):
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "convert_unilmv2_checkpoint.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        timeout=300,
    )


def test_command_line_converts_verifies_and_never_overwrites(tmp_path):
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

    output = os.path.join(tmp_path, "preset")
    common = [
        "--checkpoint", fixture_path("model.bin"),
        "--config", fixture_path("config.json"),
        "--vocab", fixture_path("vocab.txt"),
        "--output", output,
    ]
    result = _run_tool(
        *common,
        "--verify", fixture_path("encoder.npz"),
        "--verify", fixture_path("mlm.npz"),
        "--atol", "1e-5",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    verified = report["verify"][fixture_path("mlm.npz")]
    assert verified["logits"] <= 1e-5
    for name in ("config.json", "model.weights.h5", "tokenizer.json", "metadata.json"):
        assert os.path.exists(os.path.join(output, name)), name

    backbone = UniLMv2Backbone.from_preset(output)
    np.testing.assert_allclose(_encode(backbone), _encode(reference_backbone()), atol=1e-6)
    tokenizer = UniLMv2Tokenizer.from_preset(output)
    assert tokenizer.vocabulary_size() == 120

    # An existing preset is never overwritten.
    before = os.path.getmtime(os.path.join(output, "model.weights.h5"))
    again = _run_tool(*common)
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr
    assert os.path.getmtime(os.path.join(output, "model.weights.h5")) == before


def test_verify_fails_on_a_wrong_model(tmp_path):
    backbone = _fresh_backbone()  # random weights
    with pytest.raises(ValueError, match="differs from the reference"):
        cc.verify_against_reference(backbone, fixture_path("encoder.npz"))


def test_fixture_dir_is_self_contained():
    # The repository tests itself without ../shared.
    for name in ("model.bin", "config.json", "vocab.txt", "encoder.npz", "mlm.npz"):
        assert os.path.exists(os.path.join(FIXTURE_DIR, name))


def _tool_main(*args):
    sys.path.insert(0, os.path.join(REPO, "tools"))
    try:
        import convert_unilmv2_checkpoint
    finally:
        sys.path.pop(0)
    return convert_unilmv2_checkpoint.main(list(args))


def _tool_args(output, **overrides):
    paths = {
        "--checkpoint": fixture_path("model.bin"),
        "--config": fixture_path("config.json"),
        "--vocab": fixture_path("vocab.txt"),
        "--output": output,
    }
    paths.update(overrides)
    return [part for item in paths.items() for part in item]


@pytest.mark.parametrize("flag", ["--checkpoint", "--config", "--vocab", "--verify"])
def test_command_line_names_a_missing_input_file(flag, tmp_path, capsys):
    output = os.path.join(tmp_path, "preset")
    missing = os.path.join(tmp_path, "missing.file")
    if flag == "--verify":
        code = _tool_main(*_tool_args(output), "--verify", missing)
    else:
        code = _tool_main(*_tool_args(output, **{flag: missing}))
    assert code == 1
    error = capsys.readouterr().err
    assert f"the {flag} file does not exist: {missing!r}" in error
    assert "Traceback" not in error
    assert not os.path.exists(output)


def test_missing_config_in_the_library_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="`config` file does not exist"):
        cc.backbone_kwargs_from_config(os.path.join(tmp_path, "nope.json"))
    broken = os.path.join(tmp_path, "broken.json")
    open(broken, "w").write('{"vocab_size": 1')
    with pytest.raises(ValueError, match="is not valid JSON"):
        cc.backbone_kwargs_from_config(broken)
    with pytest.raises(ValueError, match="reference file does not exist"):
        cc.verify_against_reference(_fresh_backbone(), os.path.join(tmp_path, "x.npz"))


def test_a_failed_verify_removes_the_preset_it_wrote(tmp_path, capsys):
    reference = dict(np.load(fixture_path("encoder.npz")))
    key = next(k for k in reference if k.endswith("sequence_output"))
    reference[key] = reference[key] + 1.0
    wrong = os.path.join(tmp_path, "wrong.npz")
    np.savez(wrong, **reference)
    created = os.path.join(tmp_path, "created")
    assert _tool_main(*_tool_args(created), "--verify", wrong) == 1
    error = capsys.readouterr().err
    assert "differs from the reference" in error and "was removed" in error
    assert not os.path.exists(created)
    # An empty directory given by the user stays, emptied.
    given = os.path.join(tmp_path, "given")
    os.makedirs(given)
    assert _tool_main(*_tool_args(given), "--verify", wrong) == 1
    assert os.listdir(given) == []
