"""Conversion of released UniLMv2 checkpoints (s2s-ft raw format) to Keras.

The released files are a PyTorch state dict (`.bin`), a config json in the
style of `unilm2-base-uncased-config.json` and a WordPiece vocabulary.
`convert_checkpoint` turns them into a preset directory holding the
backbone (with its pretrained LM head) and the tokenizer. Every tensor of
the checkpoint is either mapped or explained; anything unused or missing is
an error, never silently dropped.
"""

import json
import os
import re

import numpy as np

# Tensors that carry no weight of the model, skipped on purpose:
# the label-smoothing buffer of s2s-ft fine-tuned checkpoints and the
# `position_ids` buffer (0..max_len-1) that Hugging Face BERT files carry.
_IGNORED_KEYS = ("crit_mask_lm_smoothed.one_hot", "bert.embeddings.position_ids")


def load_state_dict(path):
    """Reads a raw checkpoint into a dict of numpy arrays.

    `.safetensors` files are read with `safetensors`; anything else with
    `torch.load(..., weights_only=True)`, which refuses files that need
    pickled code to load.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"`checkpoint` is not a file. Received: checkpoint={path!r}")
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError as e:  # pragma: no cover - depends on the env
            raise ImportError(
                "Reading a .safetensors checkpoint needs `pip install safetensors`."
            ) from e
        try:
            return dict(load_file(path))
        except Exception as e:
            raise ValueError(
                f"Could not read the safetensors checkpoint {path!r}: {e}"
            ) from e
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the env
        raise ImportError(
            "Reading a PyTorch `.bin` checkpoint needs torch: "
            "`pip install torch` (any recent CPU build)."
        ) from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"Could not load {path!r} as a plain tensor state dict with "
            "`torch.load(weights_only=True)`. Files that need pickled code to "
            "load are refused. Original error: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    if isinstance(state, dict) and "state_dict" in state and len(state) <= 3:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"{path!r} does not hold a flat state dict of tensors "
            f"(found {type(state).__name__})."
        )
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def _read_config(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"`config` file does not exist. Received: config={path!r}")
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"`config` file {path!r} is not valid JSON: {e}") from e


def backbone_kwargs_from_config(config):
    """Maps a UniLMv2 (s2s-ft / BERT style) config dict to backbone arguments."""
    if isinstance(config, (str, os.PathLike)):
        config = _read_config(config)
    required = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
    )
    missing = [key for key in required if key not in config]
    if missing:
        raise ValueError(
            f"The checkpoint config lacks the keys {missing}. "
            f"Received keys: {sorted(config)}"
        )
    activation = config.get("hidden_act", "gelu")
    if activation != "gelu":
        raise ValueError(
            "Only the exact GELU (`hidden_act: gelu`) of UniLMv2 is supported. "
            f"Received: hidden_act={activation!r}"
        )
    return {
        "vocabulary_size": config["vocab_size"],
        "num_layers": config["num_hidden_layers"],
        "num_heads": config["num_attention_heads"],
        "hidden_dim": config["hidden_size"],
        "intermediate_dim": config["intermediate_size"],
        "max_sequence_length": config["max_position_embeddings"],
        "num_segments": config.get("type_vocab_size", 2),
        # s2s-ft: a config without `rel_pos_bins` has no relative bias.
        "relative_position_buckets": config.get("rel_pos_bins", 0),
        "max_relative_position": config.get("max_rel_pos", 128),
        "layer_norm_epsilon": config.get("layer_norm_eps", 1e-12),
        "dropout": config.get("hidden_dropout_prob", 0.1),
    }


class _StateDict:
    """Key lookup over a raw state dict that records what was used."""

    def __init__(self, state_dict):
        self.tensors = {}
        for key, value in state_dict.items():
            # Accept checkpoints with or without the `bert.` prefix and
            # TF-style `gamma`/`beta` LayerNorm names.
            key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
            key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
            if key.startswith(("embeddings.", "encoder.", "pooler.", "rel_pos_bias.")):
                key = "bert." + key
            self.tensors[key] = np.asarray(value)
        self.used = set()

    def has(self, key):
        return key in self.tensors

    def pop(self, key):
        if key not in self.tensors:
            raise KeyError(key)
        self.used.add(key)
        return self.tensors[key]

    def unused(self):
        return sorted(k for k in self.tensors if k not in self.used)


def _assign(variable, value, key):
    value = np.asarray(value)
    if tuple(variable.shape) != tuple(value.shape):
        raise ValueError(
            f"Shape mismatch for checkpoint tensor {key!r}: the model expects "
            f"{tuple(variable.shape)} for `{variable.path}`, the checkpoint "
            f"holds {tuple(value.shape)}. Does the config match the checkpoint?"
        )
    variable.assign(value.astype("float32"))


def _dense(layer, sd, prefix, has_bias=True):
    _assign(layer.kernel, sd.pop(prefix + ".weight").T, prefix + ".weight")
    if has_bias:
        _assign(layer.bias, sd.pop(prefix + ".bias"), prefix + ".bias")


def _layer_norm(layer, sd, prefix):
    _assign(layer.gamma, sd.pop(prefix + ".weight"), prefix + ".weight")
    _assign(layer.beta, sd.pop(prefix + ".bias"), prefix + ".bias")


def _attention_qkv(attention, sd, prefix, hidden_dim):
    fused = prefix + ".qkv_linear.weight"
    if sd.has(fused):
        weight = sd.pop(fused)
        if weight.shape != (3 * hidden_dim, hidden_dim):
            raise ValueError(
                f"{fused!r} must have shape {(3 * hidden_dim, hidden_dim)}; "
                f"the checkpoint holds {weight.shape}."
            )
        q, k, v = np.split(weight, 3, axis=0)
        _assign(attention.query_dense.kernel, q.T, fused)
        _assign(attention.key_dense.kernel, k.T, fused)
        _assign(attention.value_dense.kernel, v.T, fused)
        q_bias = sd.pop(prefix + ".q_bias").reshape(-1)
        v_bias = sd.pop(prefix + ".v_bias").reshape(-1)
        _assign(attention.query_dense.bias, q_bias, prefix + ".q_bias")
        _assign(attention.value_dense.bias, v_bias, prefix + ".v_bias")
        return
    _dense(attention.query_dense, sd, prefix + ".query")
    _dense(attention.value_dense, sd, prefix + ".value")
    _assign(
        attention.key_dense.kernel,
        sd.pop(prefix + ".key.weight").T,
        prefix + ".key.weight",
    )
    # A key bias adds one constant to every score of a query row; the softmax
    # cancels it exactly, so the model has none. Consume it (it is mapped,
    # provably, to nothing).
    if sd.has(prefix + ".key.bias"):
        sd.pop(prefix + ".key.bias")


def convert_state_dict(
    state_dict,
    backbone,
    allow_missing_pooler=False,
    initialize_lm_head=False,
    initialize_relative_bias=False,
):
    """Copies a raw UniLMv2 state dict into `backbone` (and its LM head).

    Handles the fused `qkv_linear` projection with `q_bias`/`v_bias` (the
    released format) and split `query`/`key`/`value` tensors, the relative
    bias under `bert.encoder.rel_pos_bias` or `bert.rel_pos_bias`, the
    pooler and the MLM head (`cls.predictions.*`, output tied to the word
    embeddings).

    Args:
        state_dict: dict of name -> array (see `load_state_dict`).
        backbone: a `UniLMv2Backbone` built with the checkpoint's config.
        allow_missing_pooler: if True, a checkpoint without `bert.pooler.*`
            keeps the backbone's fresh pooler; otherwise that is an error.
        initialize_lm_head: if True, a checkpoint without `cls.predictions.*`
            (a BERT-layout encoder shipped without its MLM head, e.g. a
            sentence-embedding model) keeps the backbone's fresh LM head
            (it must then be trained, e.g. by continued PMLM pre-training);
            otherwise a missing head is an error.
        initialize_relative_bias: if True, a checkpoint without a
            relative-position table (a plain BERT) converted into a backbone
            that has one gets an all-zero table: the converted model then
            computes exactly what the checkpoint computes, and continued
            pre-training learns the bias.

    Returns:
        A dict report: `{"pooler": ..., "lm_head": ..., "relative_bias": ...}`,
        each `"converted"` or `"initialized"`.

    Raises:
        ValueError: on a missing or unused tensor, or a shape mismatch.
    """
    sd = _StateDict(state_dict)
    hidden_dim = backbone.hidden_dim
    report = {}
    try:
        emb = "bert.embeddings."
        _assign(
            backbone.token_embedding.embeddings,
            sd.pop(emb + "word_embeddings.weight"),
            emb + "word_embeddings.weight",
        )
        _assign(
            backbone.position_embedding.embeddings,
            sd.pop(emb + "position_embeddings.weight"),
            emb + "position_embeddings.weight",
        )
        _assign(
            backbone.segment_embedding.embeddings,
            sd.pop(emb + "token_type_embeddings.weight"),
            emb + "token_type_embeddings.weight",
        )
        _layer_norm(backbone.embeddings_layer_norm, sd, emb + "LayerNorm")

        rel_keys = [
            k for k in ("bert.encoder.rel_pos_bias.weight", "bert.rel_pos_bias.weight")
            if sd.has(k)
        ]
        if backbone.relative_position_bias is not None:
            table = backbone.relative_position_bias.bias_table
            if rel_keys:
                _assign(table, sd.pop(rel_keys[0]).T, rel_keys[0])
                report["relative_bias"] = "converted"
            elif initialize_relative_bias:
                table.assign(np.zeros(tuple(table.shape), "float32"))
                report["relative_bias"] = "initialized"
            else:
                raise KeyError("bert.encoder.rel_pos_bias.weight")

        for i, layer in enumerate(backbone.transformer_layers):
            p = f"bert.encoder.layer.{i}."
            attention = layer.self_attention
            _attention_qkv(attention, sd, p + "attention.self", hidden_dim)
            _dense(attention.output_dense, sd, p + "attention.output.dense")
            _layer_norm(
                layer.self_attention_layer_norm, sd, p + "attention.output.LayerNorm"
            )
            _dense(layer.feedforward_intermediate_dense, sd, p + "intermediate.dense")
            _dense(layer.feedforward_output_dense, sd, p + "output.dense")
            _layer_norm(layer.feedforward_layer_norm, sd, p + "output.LayerNorm")

        if sd.has("bert.pooler.dense.weight"):
            _dense(backbone.pooled_dense, sd, "bert.pooler.dense")
            report["pooler"] = "converted"
        elif allow_missing_pooler:
            report["pooler"] = "initialized"
        else:
            raise KeyError("bert.pooler.dense.weight")

        head = backbone.lm_head
        if sd.has("cls.predictions.bias") or not initialize_lm_head:
            _dense(head.transform_dense, sd, "cls.predictions.transform.dense")
            _layer_norm(
                head.transform_layer_norm, sd, "cls.predictions.transform.LayerNorm"
            )
            _assign(
                head.output_bias, sd.pop("cls.predictions.bias"), "cls.predictions.bias"
            )
            report["lm_head"] = "converted"
        else:
            report["lm_head"] = "initialized"
    except KeyError as e:
        key = e.args[0]
        hint = ""
        if key == "bert.pooler.dense.weight":
            hint = (
                " Checkpoints saved by s2s-ft fine-tuning have no pooler; pass "
                "`allow_missing_pooler=True` (`--allow-missing-pooler`) to "
                "keep a freshly initialised one."
            )
        elif "rel_pos_bias" in key:
            hint = (
                " The config asks for a relative-position bias "
                "(`rel_pos_bins` > 0) that the checkpoint does not have; pass "
                "`initialize_relative_bias=True` (`--initialize-relative-bias`) "
                "to start it at zero."
            )
        elif key.startswith("cls.predictions"):
            hint = (
                " The checkpoint has no MLM head; pass `initialize_lm_head=True` "
                "(`--initialize-lm-head`) to keep a fresh one and train it."
            )
        raise ValueError(
            f"The checkpoint is missing the tensor {key!r}.{hint}"
        ) from None

    # The tied output projection may be stored explicitly: it must equal the
    # word embeddings, since the model ties them.
    word_embeddings = sd.tensors["bert.embeddings.word_embeddings.weight"]
    for key in ("cls.predictions.decoder.weight", "cls.predictions.decoder_weight"):
        if sd.has(key):
            if not np.array_equal(sd.pop(key), word_embeddings):
                raise ValueError(
                    f"{key!r} differs from the word embeddings; UniLMv2 ties the "
                    "LM output projection to them, so an untied checkpoint "
                    "cannot be converted faithfully."
                )
    for key in _IGNORED_KEYS:
        if sd.has(key):
            sd.pop(key)
    if (
        backbone.relative_position_bias is None
        and any("rel_pos_bias" in k for k in sd.unused())
    ):
        raise ValueError(
            "The checkpoint has a relative-position bias table but the config "
            "turns the bias off (`rel_pos_bins` missing or 0)."
        )
    unused = sd.unused()
    if unused:
        raise ValueError(
            f"{len(unused)} checkpoint tensor(s) were not used by the "
            f"conversion: {unused}. The checkpoint does not match the "
            "UniLMv2 layout or the config."
        )
    return report


def convert_checkpoint(
    checkpoint,
    config,
    vocabulary,
    output_dir,
    lowercase=True,
    allow_missing_pooler=False,
    initialize_lm_head=False,
    relative_position_buckets=None,
    dtype="float32",
):
    """Converts a released UniLMv2 checkpoint into a preset directory.

    Args:
        checkpoint: path to the raw state dict (`.bin` or `.safetensors`).
        config: path to the checkpoint's config json (or a dict).
        vocabulary: path to the WordPiece vocabulary file.
        output_dir: the preset directory to write. It must not exist or be
            empty: a converter never overwrites what a user saved.
        lowercase: False for cased checkpoints.
        allow_missing_pooler, initialize_lm_head: see `convert_state_dict`.
        relative_position_buckets: if given, overrides the config's
            `rel_pos_bins`. A positive value for a checkpoint without a
            relative-position table (a plain BERT) adds one, initialised to
            zero (see `convert_state_dict`'s `initialize_relative_bias`).
        dtype: dtype of the saved weights.

    Returns:
        `(backbone, tokenizer, report)`.
    """
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

    output_dir = os.fspath(output_dir)
    if os.path.exists(output_dir) and (
        not os.path.isdir(output_dir) or os.listdir(output_dir)
    ):
        raise ValueError(
            "`output_dir` exists and is not an empty directory; refusing to "
            f"overwrite it. Received: output_dir={output_dir!r}"
        )
    if isinstance(config, (str, os.PathLike)):
        config = _read_config(config)
    if not os.path.isfile(os.fspath(vocabulary)):
        raise ValueError(
            f"`vocabulary` file does not exist. Received: vocabulary={os.fspath(vocabulary)!r}"
        )
    kwargs = backbone_kwargs_from_config(config)
    if relative_position_buckets is not None:
        kwargs["relative_position_buckets"] = relative_position_buckets
    backbone = UniLMv2Backbone(**kwargs, dtype=dtype)
    tokenizer = UniLMv2Tokenizer(vocabulary=os.fspath(vocabulary), lowercase=lowercase)
    if tokenizer.vocabulary_size() != kwargs["vocabulary_size"]:
        raise ValueError(
            f"The vocabulary has {tokenizer.vocabulary_size()} tokens but the "
            f"config's vocab_size is {kwargs['vocabulary_size']}."
        )
    report = convert_state_dict(
        load_state_dict(checkpoint),
        backbone,
        allow_missing_pooler=allow_missing_pooler,
        initialize_lm_head=initialize_lm_head,
        initialize_relative_bias=relative_position_buckets is not None,
    )
    os.makedirs(output_dir, exist_ok=True)
    backbone.save_to_preset(output_dir)
    tokenizer.save_to_preset(output_dir)
    _update_metadata(
        output_dir,
        {
            "converted_from": {
                "checkpoint": os.path.basename(os.fspath(checkpoint)),
                "config": {
                    k: config[k]
                    for k in ("source_type_id", "target_type_id")
                    if k in config
                },
                "lowercase": lowercase,
                **report,
            }
        },
    )
    return backbone, tokenizer, report


def _update_metadata(preset_dir, extra):
    path = os.path.join(preset_dir, "metadata.json")
    metadata = {}
    if os.path.exists(path):
        with open(path) as f:
            metadata = json.load(f)
    metadata.update(extra)
    with open(path, "w") as f:
        json.dump(metadata, f, indent=2)


def reference_inputs(data, prefix=""):
    """Backbone inputs from reference arrays (`<prefix>input_ids`, ...).

    The reference's `attention_mask` is a 2-D padding mask or a 3-D mask;
    a 3-D mask comes with an all-ones `padding_mask`.
    """
    mask = data[prefix + "attention_mask"]
    inputs = {
        "token_ids": data[prefix + "input_ids"],
        "segment_ids": data[prefix + "token_type_ids"],
        "position_ids": data[prefix + "position_ids"],
    }
    if mask.ndim == 2:
        inputs["padding_mask"] = mask
    else:
        inputs["padding_mask"] = np.ones(mask.shape[:2], "int32")
        inputs["attention_mask"] = mask
    return inputs


def verify_against_reference(backbone, reference_file, atol=1e-4):
    """Runs reference inputs through `backbone` and compares the outputs.

    `reference_file` is an `.npz` whose arrays are grouped as
    `<group>/input_ids`, `<group>/token_type_ids`, `<group>/position_ids`,
    `<group>/attention_mask` (2-D padding mask or 3-D mask) and any of
    `<group>/sequence_output`, `<group>/pooled_output`, `<group>/logits`
    (MLM logits at every position); ungrouped keys form the group `""`.

    Returns:
        A dict `{"<group>/<output>": max_abs_diff}`.

    Raises:
        ValueError: if a difference exceeds `atol`, or the file has nothing
            to compare.
    """
    from keras import ops

    if not os.path.isfile(os.fspath(reference_file)):
        raise ValueError(
            f"The reference file does not exist. Received: reference_file={reference_file!r}"
        )
    data = np.load(reference_file)
    groups = sorted({k.rpartition("/")[0] for k in data.files if k.endswith("input_ids")})
    results = {}
    for group in groups:
        prefix = group + "/" if group else ""
        mask = data[prefix + "attention_mask"]
        outputs = backbone(reference_inputs(data, prefix))
        computed = {
            "sequence_output": outputs["sequence_output"],
            "pooled_output": outputs["pooled_output"],
        }
        if prefix + "logits" in data.files:
            computed["logits"] = backbone.lm_head(outputs["sequence_output"])
        # A query that sees no key at all (`<group>/dead_position`) gets a
        # softmax of scores shifted by -10000, where float32 rounding alone
        # moves the result by ~1e-4: such rows are left out of the check.
        keep = np.ones(mask.shape[:2], bool)
        if prefix + "dead_position" in data.files:
            example, position = data[prefix + "dead_position"]
            keep[example, position] = False
        for name, value in computed.items():
            if prefix + name in data.files:
                diff = np.abs(ops.convert_to_numpy(value) - data[prefix + name])
                if diff.ndim >= 3:
                    diff = diff[keep]
                results[prefix + name] = float(np.max(diff))
    if not results:
        raise ValueError(f"{reference_file!r} holds no outputs to compare.")
    failed = {k: v for k, v in results.items() if not v <= atol}
    if failed:
        raise ValueError(
            f"The converted model differs from the reference beyond atol={atol}: "
            f"{failed}"
        )
    return results
