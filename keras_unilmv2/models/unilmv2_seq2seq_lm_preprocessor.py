"""Preprocessing for UniLMv2 pseudo-mask seq2seq fine-tuning (s2s-ft)."""

import keras
import numpy as np
import tensorflow as tf
from keras_hub.layers import StartEndPacker
from keras_hub.models import Preprocessor
from keras_hub.src.utils.tensor_utils import no_convert_scope

from keras_unilmv2 import masks
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.checks import check_rate
from keras_unilmv2.utils.preset_utils import PresetMixin
from keras_unilmv2.utils.seeding import check_seed
from keras_unilmv2.utils.seeding import example_seeds

# This preprocessor runs on TensorFlow ops, eagerly and inside `tf.data`, on
# every Keras backend (TensorFlow is a dependency, as for keras-hub).

# The random streams of an example (see `keras_unilmv2.utils.seeding`).
_STREAMS = ("pseudo", "random_id", "target_drop", "source_mask")


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2Seq2SeqLMPreprocessor(PresetMixin, Preprocessor):
    """Builds the s2s-ft pseudo-mask layout `[source | target | pseudo]`.

    For each `(encoder_text, decoder_text)` pair:

    - source = `[CLS] source [SEP]`, cut to `encoder_sequence_length` (S)
      and padded; target = `target [SEP]`, cut to `decoder_sequence_length`
      (T) and padded; long texts are truncated, never an error;
    - pseudo block: one pseudo token per real target token, `[MASK]` with
      probability `1 - pseudo_keep_rate - pseudo_random_rate`, the gold
      token itself with `pseudo_keep_rate`, a uniformly random id with
      `pseudo_random_rate` (the reference's 80/10/10);
    - target word drop: with probability `target_mask_rate` a visible
      target token is replaced by its (noised) pseudo token;
    - optional source masking: with probability `source_mask_rate` a source
      token (not `[CLS]`/`[SEP]`) becomes `[MASK]`;
    - segment ids `source_type_id` / `target_type_id`, position ids (pseudo
      tokens reuse the target positions) and the 3-D attention mask of
      `keras_unilmv2.masks.seq2seq_inputs`.

    Outputs `(x, y, sample_weight)`: `x` holds the backbone inputs plus
    `pseudo_positions` (the slots of the pseudo block, `[T]`), `y` the gold
    target ids `[T]` (0 on padding), `sample_weight` 1.0 on real target
    tokens. The noise is drawn from stateless random ops seeded by `seed`
    and the example's tokens, so the output is the same eagerly and inside
    `tf.data`, and reproducible; `seed=None` draws fresh noise every call.

    Args:
        tokenizer: a `UniLMv2Tokenizer`.
        encoder_sequence_length: int, S (with `[CLS]` and `[SEP]`).
        decoder_sequence_length: int, T (with the final `[SEP]`).
        pseudo_keep_rate: float, reference default 0.1.
        pseudo_random_rate: float, reference default 0.1.
        target_mask_rate: float, the reference's `target_mask_prob` (0.5).
        source_mask_rate: float, default 0 (off).
        source_type_id: int, 0 in UniLMv2 configs.
        target_type_id: int, 1 in UniLMv2 configs.
        seed: int (fits in int64) or None; see
            `keras_unilmv2.utils.seeding`.

    Example:
    ```python
    preprocessor = keras_unilmv2.UniLMv2Seq2SeqLMPreprocessor.from_preset(
        "unilmv2_tiny_en_uncased",
        encoder_sequence_length=128,
        decoder_sequence_length=32,
    )
    x, y, sample_weight = preprocessor(
        {"encoder_text": ["a long document ..."], "decoder_text": ["its title"]}
    )
    ```
    """

    backbone_cls = UniLMv2Backbone
    tokenizer_cls = UniLMv2Tokenizer

    def __init__(
        self,
        tokenizer,
        encoder_sequence_length=192,
        decoder_sequence_length=64,
        pseudo_keep_rate=0.1,
        pseudo_random_rate=0.1,
        target_mask_rate=0.5,
        source_mask_rate=0.0,
        source_type_id=0,
        target_type_id=1,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        encoder_sequence_length = check_int(
            "encoder_sequence_length", encoder_sequence_length, 3
        )
        decoder_sequence_length = check_int(
            "decoder_sequence_length", decoder_sequence_length, 2
        )
        pseudo_keep_rate = check_rate("pseudo_keep_rate", pseudo_keep_rate)
        pseudo_random_rate = check_rate("pseudo_random_rate", pseudo_random_rate)
        target_mask_rate = check_rate("target_mask_rate", target_mask_rate)
        source_mask_rate = check_rate("source_mask_rate", source_mask_rate)
        if pseudo_keep_rate + pseudo_random_rate > 1.0:
            raise ValueError(
                "`pseudo_keep_rate + pseudo_random_rate` must be <= 1. Received: "
                f"{pseudo_keep_rate} + {pseudo_random_rate}"
            )
        self.encoder_sequence_length = encoder_sequence_length
        self.decoder_sequence_length = decoder_sequence_length
        self.pseudo_keep_rate = pseudo_keep_rate
        self.pseudo_random_rate = pseudo_random_rate
        self.target_mask_rate = target_mask_rate
        self.source_mask_rate = source_mask_rate
        self.source_type_id = source_type_id
        self.target_type_id = target_type_id
        self.seed = check_seed(seed)

    def build(self, input_shape=None):
        # keras-hub's packer, on its TensorFlow path also eagerly: the whole
        # preprocessor runs on TensorFlow ops, so that eager calls and
        # `tf.data` give the same output. One packer serves the three
        # layouts: `[CLS] source [SEP]`, `target [SEP]` and the prompt.
        t = self.tokenizer
        self.packer = StartEndPacker(
            sequence_length=self.encoder_sequence_length,
            start_value=int(t.cls_token_id),
            end_value=int(t.sep_token_id),
            pad_value=int(t.pad_token_id),
            return_padding_mask=True,
            _allow_python_workflow=False,
        )
        self.built = True

    def _pack(self, tokens, length, start, end):
        """`[batch, length]` int32 ids and the number of real slots."""

        if not self.built:
            self.build(None)
        with no_convert_scope():  # TensorFlow outputs on every backend
            ids, mask = self.packer(
                tokens,
                sequence_length=length,
                add_start_value=start,
                add_end_value=end,
            )
        lengths = tf.reduce_sum(tf.cast(mask, "int32"), axis=1)
        return tf.cast(ids, "int32"), lengths

    # --- tokenization -------------------------------------------------------

    def _tokenize(self, inputs, name):

        if isinstance(inputs, (list, tuple)) and not inputs or (
            hasattr(inputs, "shape")
            and getattr(inputs.shape, "rank", len(inputs.shape)) != 0
            and 0 in tuple(inputs.shape)[:1]
        ):
            raise ValueError(
                f"`{name}` is an empty batch; it must hold at least one "
                f"string. Received: {name}={inputs!r}"
            )
        if isinstance(inputs, str) or (
            isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], str)
        ):
            inputs = tf.constant(inputs)
        if hasattr(inputs, "dtype") and inputs.dtype == tf.string:
            empty = tf.equal(tf.strings.length(tf.strings.strip(inputs)), 0)
            if tf.executing_eagerly():
                if bool(tf.reduce_any(empty)):
                    index = int(tf.where(tf.reshape(empty, [-1]))[0, 0])
                    raise ValueError(
                        f"`{name}` holds an empty (or blank) string at index "
                        f"{index}; every example needs text. Received: "
                        f"{name}[{index}]={inputs.numpy().reshape(-1)[index]!r}"
                    )
            else:
                # Inside tf.data / tf.function: fails at run time with
                # `tf.errors.InvalidArgumentError`.
                tf.debugging.assert_equal(
                    tf.reduce_any(empty),
                    False,
                    message=f"`{name}` holds an empty string; every example needs text.",
                )
            return self.tokenizer(inputs)
        return inputs  # already token ids (dense or ragged)

    @staticmethod
    def _as_batch(tokens):

        if isinstance(tokens, tf.RaggedTensor):
            return tokens, False
        if isinstance(tokens, (list, tuple)):
            # The tokenizer's pure-Python path returns lists.
            if tokens and isinstance(tokens[0], (list, tuple)):
                return tf.ragged.constant(tokens, dtype="int32", ragged_rank=1), False
            return tf.ragged.constant([list(tokens)], dtype="int32", ragged_rank=1), True
        tokens = tf.convert_to_tensor(tokens)
        if tokens.shape.rank == 1:
            return tf.RaggedTensor.from_tensor(tokens[None, :]), True
        return tf.RaggedTensor.from_tensor(tokens), False

    @staticmethod
    def _check_batch_sizes(source, target, source_unbatched, target_unbatched):
        """One target per source: same batch size, both batched or not."""

        message = (
            "`encoder_text` and `decoder_text` must hold the same number of "
            "examples (one target text per source text)"
        )
        if source_unbatched != target_unbatched:
            raise ValueError(
                f"{message}; received one "
                f"{'unbatched' if source_unbatched else 'batched'} "
                "`encoder_text` and one "
                f"{'unbatched' if target_unbatched else 'batched'} "
                "`decoder_text`."
            )
        if tf.executing_eagerly():
            sizes = int(source.nrows()), int(target.nrows())
            if sizes[0] != sizes[1]:
                raise ValueError(
                    f"{message}. Received: {sizes[0]} encoder texts and "
                    f"{sizes[1]} decoder texts."
                )
            return source, target
        # Inside tf.data / tf.function: fails at run time with
        # `tf.errors.InvalidArgumentError`.
        check = tf.debugging.assert_equal(
            source.nrows(), target.nrows(), message=message
        )
        with tf.control_dependencies([check]):
            return tf.identity(source), tf.identity(target)

    def _pack_source(self, tokens):
        return self._pack(tokens, self.encoder_sequence_length, True, True)

    def _pack_target(self, tokens, length):
        return self._pack(tokens, length, False, True)

    # --- noise --------------------------------------------------------------

    def _draws(self, source, target):
        """The noise of every example: a dict of `[batch, ...]` draws.

        Each example draws from its own streams, keyed by `seed` and its
        packed ids (`keras_unilmv2.utils.seeding`): the same eagerly and in
        `tf.data`, whatever the batch.
        """

        target_length = self.decoder_sequence_length
        vocabulary_size = self.tokenizer.vocabulary_size()
        mask_source = self.source_mask_rate > 0

        def draw(ids):
            seeds = example_seeds(self.seed, ids, _STREAMS)
            out = {
                "pseudo": tf.random.stateless_uniform(
                    [target_length], seeds["pseudo"], alg="philox"
                ),
                "random_id": tf.random.stateless_uniform(
                    [target_length],
                    seeds["random_id"],
                    minval=0,
                    maxval=vocabulary_size,
                    dtype=tf.int32,
                    alg="philox",
                ),
                "target_drop": tf.random.stateless_uniform(
                    [target_length], seeds["target_drop"], alg="philox"
                ),
            }
            if mask_source:
                out["source_mask"] = tf.random.stateless_uniform(
                    [self.encoder_sequence_length],
                    seeds["source_mask"],
                    alg="philox",
                )
            return out

        signature = {
            "pseudo": tf.float32,
            "random_id": tf.int32,
            "target_drop": tf.float32,
        }
        if mask_source:
            signature["source_mask"] = tf.float32
        both = tf.concat([source, target], axis=1)
        return tf.map_fn(draw, both, fn_output_signature=signature)

    def _noise(self, source, target, num_source, num_target):

        t = self.tokenizer
        shape = tf.shape(target)
        real_target = tf.sequence_mask(num_target, self.decoder_sequence_length)
        draws = self._draws(source, target)
        choice = draws["pseudo"]
        keep = choice < self.pseudo_keep_rate
        rand = tf.logical_and(
            ~keep, choice < self.pseudo_keep_rate + self.pseudo_random_rate
        )
        pseudo = tf.where(keep, target, tf.fill(shape, t.mask_token_id))
        pseudo = tf.where(rand, draws["random_id"], pseudo)
        pseudo = tf.where(real_target, pseudo, t.pad_token_id)
        drop = draws["target_drop"] < self.target_mask_rate
        visible_target = tf.where(tf.logical_and(drop, real_target), pseudo, target)
        if self.source_mask_rate > 0:
            positions = tf.range(self.encoder_sequence_length)[None, :]
            inner = tf.logical_and(positions > 0, positions < num_source[:, None] - 1)
            hit = draws["source_mask"] < self.source_mask_rate
            source = tf.where(tf.logical_and(inner, hit), t.mask_token_id, source)
        return source, visible_target, pseudo

    # --- layers API ---------------------------------------------------------

    def call(self, x, y=None, sample_weight=None):

        if not isinstance(x, dict) or set(x) != {"encoder_text", "decoder_text"}:
            raise ValueError(
                "`UniLMv2Seq2SeqLMPreprocessor` takes a dict with the keys "
                "'encoder_text' and 'decoder_text' (strings or token ids). "
                f"Received: {sorted(x) if isinstance(x, dict) else type(x).__name__}"
            )
        if y is not None or sample_weight is not None:
            raise ValueError(
                "`UniLMv2Seq2SeqLMPreprocessor` makes its own labels from "
                "'decoder_text'; pass no `y` or `sample_weight`."
            )
        source_tokens, unbatched = self._as_batch(self._tokenize(x["encoder_text"], "encoder_text"))
        target_tokens, target_unbatched = self._as_batch(
            self._tokenize(x["decoder_text"], "decoder_text")
        )
        source_tokens, target_tokens = self._check_batch_sizes(
            source_tokens, target_tokens, unbatched, target_unbatched
        )
        source, num_source = self._pack_source(source_tokens)
        labels, num_target = self._pack_target(target_tokens, self.decoder_sequence_length)
        source, target, pseudo = self._noise(source, labels, num_source, num_target)
        inputs = masks.seq2seq_inputs(
            source,
            target,
            pseudo,
            num_source,
            num_target,
            self.source_type_id,
            self.target_type_id,
        )
        start = self.encoder_sequence_length + self.decoder_sequence_length
        batch = tf.shape(source)[0]
        inputs["pseudo_positions"] = tf.tile(
            tf.range(start, start + self.decoder_sequence_length)[None, :], [batch, 1]
        )
        weights = tf.cast(tf.sequence_mask(num_target, self.decoder_sequence_length), "float32")
        outputs = (inputs, labels, weights)
        if unbatched:
            outputs = tf.nest.map_structure(lambda t: t[0], outputs)
        return keras.utils.pack_x_y_sample_weight(*outputs)

    def generate_preprocess(self, x, sequence_length=None):
        """Source text (and an optional target prefix) -> `generate` inputs.

        `x` is a string, a list of strings, or a dict with `encoder_text`
        and optionally `decoder_text`: a prompt, the beginning of the target
        that generation continues (as in keras-hub's BART). An empty prompt
        string means no prompt for that example. `sequence_length` is the
        number of target slots (default `decoder_sequence_length`), prompt
        included, as BART's `decoder_sequence_length`; a prompt must leave
        at least one slot to generate. The decoder block has one more slot
        in front (slot 0, never attended to), so that the first step has a
        "previous token" like every other step; the prompt's tokens fill
        slots `1..p` and `decoder_padding_mask` marks them (and slot 0) as
        given.

        Example:
        ```python
        inputs = preprocessor.generate_preprocess(
            {"encoder_text": ["a long document"], "decoder_text": ["its"]},
            sequence_length=16,
        )
        ```
        """

        prompt = None
        if isinstance(x, dict):
            unknown = sorted(set(x) - {"encoder_text", "decoder_text"})
            if "encoder_text" not in x or unknown:
                raise ValueError(
                    "`generate()` takes strings or a dict with the key "
                    "'encoder_text' and optionally 'decoder_text' (a target "
                    f"prefix to continue). Received keys: {sorted(x)}"
                )
            prompt = x.get("decoder_text")
            x = x["encoder_text"]
        target_length = sequence_length
        if target_length is None:
            target_length = self.decoder_sequence_length
        target_length = check_int(
            "max_length",
            target_length,
            1,
            hint=" (the number of target tokens to generate)",
        )
        tokens, unbatched = self._as_batch(self._tokenize(x, "encoder_text"))
        source, _ = self._pack_source(tokens)
        batch = tf.shape(source)[0]
        decoder_token_ids = tf.zeros([batch, target_length], "int32")
        given = tf.zeros([batch, target_length], "bool")
        if prompt is not None:
            decoder_token_ids, given = self._pack_prompt(
                prompt, target_length, batch, unbatched
            )
        outputs = {
            "encoder_token_ids": source,
            "encoder_padding_mask": tf.not_equal(source, self.tokenizer.pad_token_id),
            "decoder_token_ids": tf.concat(
                [tf.zeros([batch, 1], "int32"), decoder_token_ids], axis=1
            ),
            "decoder_padding_mask": tf.concat(
                [tf.ones([batch, 1], "bool"), given], axis=1
            ),
        }
        if unbatched:
            outputs = tf.nest.map_structure(lambda t: t[0], outputs)
        return outputs

    def _pack_prompt(self, prompt, target_length, batch, unbatched):
        """`decoder_text` prompts -> `[batch, target_length]` ids and mask."""

        if isinstance(prompt, np.ndarray) and prompt.dtype.kind in "OSU":
            prompt = prompt.tolist()
        if isinstance(prompt, (bytes, str)) or (
            isinstance(prompt, (list, tuple))
            and prompt
            and isinstance(prompt[0], (bytes, str))
        ):
            prompt = tf.constant(prompt)
        if hasattr(prompt, "dtype") and prompt.dtype == tf.string:
            # Empty strings are allowed here: no prompt for that example.
            prompt = self.tokenizer(prompt)
        tokens, prompt_unbatched = self._as_batch(prompt)
        if tf.executing_eagerly():
            rows = int(tokens.nrows())
            if prompt_unbatched != unbatched or rows != int(batch):
                raise ValueError(
                    "`decoder_text` (the prompts) must match `encoder_text`: "
                    "one prompt per source, both batched or both single. "
                    f"Received: {rows} prompt(s) "
                    f"({'single' if prompt_unbatched else 'batched'}) for "
                    f"{int(batch)} source(s) "
                    f"({'single' if unbatched else 'batched'})"
                )
            lengths = tokens.row_lengths().numpy()
            too_long = np.flatnonzero(lengths >= target_length)
            if too_long.size:
                i = int(too_long[0])
                raise ValueError(
                    f"The prompt `decoder_text[{i}]` has {int(lengths[i])} "
                    f"tokens, which leaves no room to generate within "
                    f"`max_length={target_length}` target tokens (the prompt "
                    "counts towards `max_length`). Use a larger `max_length` "
                    "or a shorter prompt."
                )
        ids, lengths = self._pack(tokens, target_length, False, False)
        return ids, tf.sequence_mask(lengths, target_length)

    def generate_postprocess(self, x):
        """Generated ids -> strings, cut at the first `[SEP]` or `[PAD]`.

        Slot 0 and the slots that `decoder_padding_mask` (if given) marks
        `False` are skipped, so a prompt is part of the text unless its mask
        was cleared (`generate(..., strip_prompt=True)`). Ids of shape
        `[batch, num_beams, length]` (a beam sampler with
        `return_all_beams=True`) give a list of `num_beams` strings per
        example.
        """
        ids = np.asarray(keras.ops.convert_to_numpy(x["decoder_token_ids"]))
        mask = x.get("decoder_padding_mask")
        if mask is None:
            mask = np.ones(ids.shape, bool)
        else:
            mask = np.asarray(keras.ops.convert_to_numpy(mask)).astype(bool)
        if ids.ndim == 3:
            batch, beams = ids.shape[:2]
            texts = self.generate_postprocess(
                {
                    "decoder_token_ids": ids.reshape(batch * beams, -1),
                    "decoder_padding_mask": mask.reshape(batch * beams, -1),
                }
            )
            return [texts[i * beams : (i + 1) * beams] for i in range(batch)]
        unbatched = ids.ndim == 1
        ids = np.atleast_2d(ids)[:, 1:]
        mask = np.atleast_2d(mask)[:, 1:]
        stop = (self.tokenizer.sep_token_id, self.tokenizer.pad_token_id)
        texts = []
        for row, keep in zip(ids, mask):
            kept = []
            for token in row[keep].tolist():
                if token in stop:
                    break
                kept.append(token)
            texts.append(self._detokenize(kept))
        return texts[0] if unbatched else texts

    def _detokenize(self, ids):
        if not ids:
            return ""
        tokens = [self.tokenizer.id_to_token(i) for i in ids]
        # Join `##` pieces to the previous word, as the reference decoder does.
        words = []
        for token in tokens:
            if token.startswith("##") and words:
                words[-1] += token[2:]
            else:
                words.append(token)
        return " ".join(words)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder_sequence_length": self.encoder_sequence_length,
                "decoder_sequence_length": self.decoder_sequence_length,
                "pseudo_keep_rate": self.pseudo_keep_rate,
                "pseudo_random_rate": self.pseudo_random_rate,
                "target_mask_rate": self.target_mask_rate,
                "source_mask_rate": self.source_mask_rate,
                "source_type_id": self.source_type_id,
                "target_type_id": self.target_type_id,
                "seed": self.seed,
            }
        )
        return config
