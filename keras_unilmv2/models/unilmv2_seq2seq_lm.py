"""UniLMv2 sequence-to-sequence LM: pseudo-mask fine-tuning and generation."""

import functools

import keras
import keras_hub
import numpy as np
from keras import ops
from keras_hub.models import Seq2SeqLM

from keras_unilmv2 import masks
from keras_unilmv2.layers.unilmv2_embedding_utils import visibility_to_bias
from keras_unilmv2.models import torch_decoding
from keras_unilmv2.models.fine_tuning import FineTuningMixin
from keras_unilmv2.models.task_variables import BackboneVariablesMixin
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.samplers.unilmv2_beam_sampler import UniLMv2BeamSampler
from keras_unilmv2.utils.checks import check_sampler
from keras_unilmv2.utils.checks import check_stop_token_ids
from keras_unilmv2.utils.preset_utils import PresetMixin


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2LabelSmoothingLoss(keras.losses.Loss):
    """The label-smoothed loss of s2s-ft, in float32.

    The target distribution puts `1 - smoothing` on the gold id and
    `smoothing / (V - 2)` on every other id except the padding id, which gets
    0; the per-token loss is `KL(q || softmax(logits))`. Label-0 (padding)
    positions contribute nothing. With the default reduction
    (`mean_with_sample_weight`) and the preprocessor's sample weights the
    result is the mean over real target tokens, as in the reference.
    With `smoothing=0` it is the plain cross-entropy.

    Args:
        smoothing: float in [0, 1).
        pad_token_id: int, the id that gets no probability mass.
    """

    def __init__(
        self,
        smoothing=0.1,
        pad_token_id=0,
        reduction="mean_with_sample_weight",
        name="unilmv2_label_smoothing",
        **kwargs,
    ):
        super().__init__(reduction=reduction, name=name, dtype="float32", **kwargs)
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"`smoothing` must be in [0, 1). Received: smoothing={smoothing}")
        self.smoothing = smoothing
        self.pad_token_id = pad_token_id

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        labels = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(logits, axis=-1)
        vocabulary_size = ops.shape(logits)[-1]
        gold = ops.one_hot(labels, vocabulary_size, dtype="float32")
        gold_log_prob = ops.sum(gold * log_probs, axis=-1)
        if self.smoothing == 0.0:
            loss = -gold_log_prob
        else:
            eps = self.smoothing
            other = eps / (ops.cast(vocabulary_size, "float32") - 2.0)
            pad_log_prob = log_probs[..., self.pad_token_id]
            # sum_v q_v log q_v is a constant; sum_v q_v log p_v splits into the
            # gold term and the uniform term over the non-gold, non-pad ids.
            rest = ops.sum(log_probs, axis=-1) - gold_log_prob - pad_log_prob
            entropy = (1.0 - eps) * np.log(1.0 - eps) + eps * ops.log(other)
            loss = entropy - (1.0 - eps) * gold_log_prob - other * rest
        return ops.where(ops.equal(labels, self.pad_token_id), 0.0, loss)

    def get_config(self):
        config = super().get_config()
        config.update({"smoothing": self.smoothing, "pad_token_id": self.pad_token_id})
        return config


def extend_position_embeddings(backbone, max_sequence_length):
    """A copy of `backbone` whose position table is tiled to a new length.

    As the reference does for `max_src + max_tgt > 512`: rows
    `n, n+1, ...` of the new table repeat rows `0, 1, ...` of the old one.
    The given backbone is left untouched.
    """
    old = backbone.max_sequence_length
    if max_sequence_length <= old:
        return backbone
    config = dict(backbone.get_config(), max_sequence_length=max_sequence_length)
    extended = UniLMv2Backbone.from_config(config)
    table = ops.convert_to_numpy(backbone.position_embedding.embeddings)
    reps = -(-max_sequence_length // old)
    for source, target in zip(backbone.weights, extended.weights):
        if source.path == backbone.position_embedding.embeddings.path:
            target.assign(np.tile(table, (reps, 1))[:max_sequence_length])
        else:
            target.assign(source)
    return extended


def repeat_to_batch(x, batch):
    """Repeats each row of `x` so that it has `batch` rows.

    Row `i` becomes rows `i * g ... i * g + g - 1` (`g = batch // len(x)`),
    the order in which a beam search lays out the beams of an example. The
    identity when `g` is statically 1.
    """
    group = batch // ops.shape(x)[0]
    if isinstance(group, int) and group == 1:
        return x
    return ops.repeat(x, group, axis=0)


def _distribute(x):
    """Lays out the batch with the active Keras distribution, if any."""
    from keras.distribution import distribution as current_distribution

    distribution = current_distribution()
    if distribution is None:
        return x

    def place(value):
        if value is None:
            return None
        if not ops.is_tensor(value):
            value = ops.convert_to_tensor(value)
        layout = distribution.get_data_layout(value.shape)
        return keras.distribution.distribute_tensor(value, layout) if layout else value

    return keras.tree.map_structure(place, x)


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2Seq2SeqLM(PresetMixin, FineTuningMixin, BackboneVariablesMixin, Seq2SeqLM):
    """UniLMv2 sequence-to-sequence LM (s2s-ft pseudo-mask fine-tuning).

    One encoder stack generates: training lays out
    `[source | target | pseudo copies of target]` under the pseudo-mask
    attention rule and scores the pseudo slots through the pretrained tied
    LM head (`backbone.lm_head`); generation encodes the source once into
    a key/value cache of the backbone's layers (`_build_cache`), then each
    step (`call_with_cache`) feeds `[previous token, [MASK]]` and reads the
    prediction at `[MASK]`. The task owns the cache and the step; the
    backbone's layers take `cache`/`cache_update_index`/`context`
    arguments, as keras-hub's cached attention does.

    `generate()` works with keras-hub's samplers (`"greedy"`, `"top_k"`,
    `"top_p"`, ...) and with `keras_unilmv2.samplers.UniLMv2BeamSampler`
    (beam search with GNMT length penalty, minimum length and n-gram
    blocking, as the reference decoder). Microsoft's decoder hard-codes a
    LayerNorm epsilon of 1e-5 where training uses the config's 1e-12; to
    reproduce its outputs exactly build the backbone with
    `UniLMv2Backbone.from_preset(preset, layer_norm_epsilon=1e-5)`.

    Args:
        backbone: a `UniLMv2Backbone`. If the preprocessor's source plus
            target length exceeds its position table, a copy with the table
            tiled (as the reference does) is used instead.
        preprocessor: a `UniLMv2Seq2SeqLMPreprocessor` or None.
        label_smoothing: float, 0.1 as in s2s-ft.

    Example:
    ```python
    seq2seq = keras_unilmv2.UniLMv2Seq2SeqLM.from_preset(
        "unilmv2_tiny_en_uncased"
    )
    seq2seq.fit({"encoder_text": docs, "decoder_text": titles}, epochs=1)
    seq2seq.compile(sampler=keras_unilmv2.samplers.UniLMv2BeamSampler(
        num_beams=4, length_penalty=0.9, no_repeat_ngram_size=3))
    seq2seq.generate(["a new document"], max_length=32)
    ```
    """

    backbone_cls = UniLMv2Backbone
    # Not read by this task's outputs: not trained by it (`task_variables`).
    unused_backbone_layers = ("pooled_dense",)
    preprocessor_cls = UniLMv2Seq2SeqLMPreprocessor

    def __init__(self, backbone, preprocessor=None, label_smoothing=0.1, **kwargs):
        if preprocessor is not None:
            needed = (
                preprocessor.encoder_sequence_length
                + preprocessor.decoder_sequence_length
            )
            backbone = extend_position_embeddings(backbone, needed)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor

        # === Functional Model ===
        inputs = {
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
            "position_ids": keras.Input((None,), dtype="int32", name="position_ids"),
            "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
            "attention_mask": keras.Input(
                (None, None), dtype="int32", name="attention_mask"
            ),
            "pseudo_positions": keras.Input(
                (None,), dtype="int32", name="pseudo_positions"
            ),
        }
        sequence = backbone(
            {k: v for k, v in inputs.items() if k != "pseudo_positions"}
        )["sequence_output"]
        logits = backbone.lm_head(sequence, positions=inputs["pseudo_positions"])
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1). Received: "
                f"label_smoothing={label_smoothing}"
            )
        # Read by `compile()`, which the base constructor calls.
        self._label_smoothing = label_smoothing
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        self.label_smoothing = label_smoothing

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        weighted_metrics="auto",
        sampler="greedy",
        jit_compile="auto",
        **kwargs,
    ):
        """Like `keras_hub.models.Seq2SeqLM.compile`, with s2s-ft defaults.

        `loss="auto"` is the label-smoothed loss of the reference (mean over
        real target tokens, float32); `optimizer="auto"` is
        the fine-tuning default (`keras_unilmv2.models.fine_tuning`): AdamW
        with weight decay 0.01 (none on biases and LayerNorm), clipnorm 1.0,
        a peak rate chosen by the backbone's width (3e-5 from `hidden_dim`
        1024, 7e-5 from 768, 3e-4 from 384, 1e-3 below), warmed up over the
        first 10% of each `fit` call's steps and decayed linearly to 0 at
        its end (s2s-ft's schedule; `fit` sizes it);
        `sampler="greedy"` by default, as the reference decoder with beam 1.

        `jit_compile` applies to training as in Keras. Generation is compiled
        with XLA unless `jit_compile=False` (or `run_eagerly=True`): on
        TensorFlow, Keras turns XLA off on CPU-only machines, where the
        decoding loop then runs about 3x slower as a plain `tf.function`
        (`tools/benchmark_generate.py`).
        """
        self._jit_generate = jit_compile is not False
        if loss == "auto":
            pad = 0
            if self.preprocessor is not None:
                pad = self.preprocessor.tokenizer.pad_token_id
            loss = UniLMv2LabelSmoothingLoss(self._label_smoothing, pad_token_id=pad)
        if isinstance(sampler, str) and sampler not in (
            "greedy", "top_k", "top_p", "random", "beam", "contrastive"
        ):
            raise ValueError(
                f"Unknown sampler {sampler!r}. Use 'greedy', 'top_k', 'top_p', "
                "'random', or a sampler instance such as "
                "`keras_unilmv2.samplers.UniLMv2BeamSampler(num_beams=4)`."
            )
        super().compile(
            optimizer=optimizer,
            loss=loss,
            weighted_metrics=weighted_metrics,
            sampler=sampler,
            jit_compile=jit_compile,
            **kwargs,
        )
        check_sampler(self.sampler, self.backbone.vocabulary_size)

    def make_generate_function(self):
        """The generation function: compiled with XLA on TensorFlow too (see
        `compile`), run under `torch.inference_mode()` on torch.

        keras-hub runs torch generation under `torch.no_grad()`; inference
        mode also skips autograd's per-tensor bookkeeping (version counters,
        views), a measurable share of an eager decoding step. The returned
        tensors are inference tensors: convert them (as `generate` does)
        before modifying them in place outside inference mode.
        """
        if getattr(self, "sampler", None) is None:
            # Never compiled (`compile=False`): generate with the default.
            self.sampler = keras_hub.samplers.get("greedy")
            self.generate_function = None
        check_sampler(self.sampler, self.backbone.vocabulary_size)
        if self.generate_function is not None:
            return self.generate_function
        backend = keras.config.backend()
        if backend == "torch":
            import torch

            def generate_function(inputs, stop_token_ids=None):
                with torch.inference_mode():
                    return self.generate_step(inputs, stop_token_ids)

            self.generate_function = generate_function
            return self.generate_function
        if (
            backend == "tensorflow"
            and not self.run_eagerly
            and getattr(self, "_jit_generate", True)
        ):
            import tensorflow as tf

            self.generate_function = tf.function(
                self.generate_step, jit_compile=True
            )
            return self.generate_function
        return super().make_generate_function()

    # --- cached generation --------------------------------------------------

    def _special_ids(self):
        if self.preprocessor is None:
            raise ValueError(
                "`generate()` needs a preprocessor to know the [MASK] id and "
                "the segment ids; attach a `UniLMv2Seq2SeqLMPreprocessor`."
            )
        p = self.preprocessor
        return p.tokenizer.mask_token_id, p.source_type_id, p.target_type_id

    def _empty_cache(self, batch, length):
        """Zero keys `[batch, heads, head_dim, length]` and values `[batch,
        heads, length, head_dim]` per layer (the layouts the two attention
        products read without a copy), in the compute dtype."""
        backbone = self.backbone
        heads = backbone.num_heads
        head_dim = backbone.hidden_dim // heads
        dtype = backbone.compute_dtype
        return tuple(
            (
                ops.zeros((batch, heads, head_dim, length), dtype=dtype),
                ops.zeros((batch, heads, length, head_dim), dtype=dtype),
            )
            for _ in range(backbone.num_layers)
        )

    def _attention_bias(self, query_positions, key_positions, visible):
        """`visible -> 0 / -10000` plus the relative-position bias:
        `[batch, heads (or 1), queries, keys]` in the compute dtype."""
        backbone = self.backbone
        bias = visibility_to_bias(visible, backbone.compute_dtype)
        if backbone.relative_position_bias is not None:
            bias = bias + backbone.relative_position_bias(query_positions, key_positions)
        return bias

    def _cached_forward(
        self, token_ids, segment_ids, position_ids, attention_bias, cache, index, context
    ):
        """The backbone's stack over new slots against `[context | cache]`:
        `(hidden [batch, new, hidden_dim], cache)` (inference, no dropout)."""
        backbone = self.backbone
        x = backbone.embeddings_add(
            (
                backbone.token_embedding(token_ids),
                backbone.position_embedding(position_ids),
                backbone.segment_embedding(segment_ids),
            )
        )
        x = backbone.embeddings_layer_norm(x)
        contexts = context if context is not None else [None] * backbone.num_layers
        caches = []
        for layer, layer_cache, layer_context in zip(
            backbone.transformer_layers, cache, contexts
        ):
            x, layer_cache = layer(
                x,
                attention_bias=attention_bias,
                cache=layer_cache,
                cache_update_index=index,
                context=layer_context,
            )
            caches.append(layer_cache)
        return x, tuple(caches)

    def _build_cache(self, encoder_token_ids, encoder_padding_mask, target_length):
        """Encodes the source once; returns `(context, cache)`.

        The layout is that of `keras_unilmv2.masks`'
        `seq2seq_decoding_position_ids` and `seq2seq_decoding_attention_mask`
        (`[source S | target slots T]`), with one more target slot in
        front: `cache` holds `target_length + 1` slots, slot 0 a
        never-visible dummy and slot `t >= 1` the layout's target slot
        `t - 1` (position `n_s + t - 1`, n_s = the real source length), so
        the `[MASK]` predicting the first token sits at `n_s`; slot `t`
        sees the real source and target slots `1..t`.

        `context["source"]` holds the source's keys and values in every
        layer (read by every step, never written; the rows of a beam search
        share their example's row), `context["target_positions"]` the
        position of every target slot, and `context["bias"]` the attention
        bias of every target slot over `[source | target slots]`
        (visibility plus relative positions, computed here once for the
        whole generation; a step reads its two rows): `batch * heads *
        (target_length + 1) * (source_length + target_length + 1)` values
        of the compute dtype.
        """
        _, source_type, _ = self._special_ids()
        batch = ops.shape(encoder_token_ids)[0]
        source_length = ops.shape(encoder_token_ids)[1]
        num_source = ops.sum(ops.cast(encoder_padding_mask, "int32"), axis=1)
        positions = masks.seq2seq_decoding_position_ids(
            num_source, source_length, target_length, ops="keras"
        )
        visible = masks.seq2seq_decoding_attention_mask(
            num_source, source_length, target_length, ops="keras"
        )
        source_positions = positions[:, :source_length]
        source_visible = visible[:, :source_length, :source_length]
        _, source_cache = self._cached_forward(
            encoder_token_ids,
            ops.full((batch, source_length), source_type, dtype="int32"),
            source_positions,
            self._attention_bias(source_positions, source_positions, source_visible),
            self._empty_cache(batch, source_length),
            0,
            None,
        )
        # The dummy slot 0: the position before the first target slot; its
        # row is a source row (it sees the source only) and no row sees it.
        dummy = ops.maximum(num_source[:, None] - 1, 0)
        target_positions = ops.concatenate(
            [dummy, positions[:, source_length:]], axis=1
        )
        rows = ops.concatenate(
            [visible[:, :1, :], visible[:, source_length:, :]], axis=1
        )
        target_visible = ops.concatenate(
            [
                rows[:, :, :source_length],
                ops.zeros((batch, target_length + 1, 1), dtype="bool"),
                rows[:, :, source_length:],
            ],
            axis=2,
        )
        context = {
            "source": source_cache,
            "target_positions": target_positions,
            "bias": self._attention_bias(
                target_positions,
                ops.concatenate([source_positions, target_positions], axis=1),
                target_visible,
            ),
        }
        return context, self._empty_cache(batch, target_length + 1)

    def call_with_cache(self, token_ids, cache, index, context):
        """One decoding step: `[token at slot index-1, [MASK] at slot index]`.

        Args:
            token_ids: int `[batch, target_length + 1]`, the prompt so far
                (slot 0 is the dummy). `batch` may be a multiple `g` of the
                context's batch: rows `i * g ... i * g + g - 1` (the beams of
                example `i`) decode against source `i`.
            cache: the target cache from `_build_cache` or the previous step
                (left as it was: the step writes a copy).
            index: int or scalar tensor, the slot of the `[MASK]`.
            context: the encoded source from `_build_cache`.

        Returns:
            `(logits [batch, vocabulary], hidden [batch, hidden_dim], cache)`,
            read at `[MASK]`.
        """
        mask_id, _, target_type = self._special_ids()
        batch = ops.shape(token_ids)[0]
        start = index - 1

        def step_rows(x, axis):  # the two query slots' rows, one per beam
            starts = [0] * len(x.shape)
            starts[axis] = start
            sizes = list(ops.shape(x))
            sizes[axis] = 2
            return repeat_to_batch(ops.slice(x, starts, sizes), batch)

        previous = ops.cast(ops.slice(token_ids, [0, start], [batch, 1]), "int32")
        step_ids = ops.concatenate([previous, ops.full_like(previous, mask_id)], axis=1)
        hidden, cache = self._cached_forward(
            step_ids,
            ops.full_like(step_ids, target_type),
            step_rows(context["target_positions"], 1),
            step_rows(context["bias"], 2),
            cache,
            start,
            context["source"],
        )
        logits = self.backbone.lm_head(hidden[:, 1:, :])[:, 0, :]
        return logits, hidden[:, 1, :], cache

    def generate_step(self, inputs, stop_token_ids=None):
        """Generates a batch: `decoder_token_ids` slots 1.. get the tokens."""
        encoder_token_ids = inputs["encoder_token_ids"]
        encoder_padding_mask = inputs["encoder_padding_mask"]
        decoder_token_ids = inputs["decoder_token_ids"]
        decoder_padding_mask = inputs["decoder_padding_mask"]
        target_length = ops.shape(decoder_token_ids)[1] - 1
        source_length = encoder_token_ids.shape[1]
        if isinstance(source_length, int) and isinstance(target_length, int):
            # Positions run up to n_s + target_length - 1 < S + target_length;
            # past the table, lookups would fail or (on JAX) silently clamp.
            table = self.backbone.max_sequence_length
            if source_length + target_length > table:
                raise ValueError(
                    "The source length plus `max_length` exceeds the position "
                    f"table: {source_length} + {target_length} > {table} rows "
                    "of the backbone's position embeddings. Use a smaller "
                    "`max_length` (or a preprocessor with a shorter "
                    "`encoder_sequence_length`), or build the task with a "
                    "preprocessor whose lengths add up to the needed size so "
                    "that the table is extended. Received: "
                    f"max_length={target_length}"
                )
        context, cache = self._build_cache(
            encoder_token_ids, encoder_padding_mask, target_length
        )
        # The source is a closure constant, outside the loop state: the
        # samplers neither carry nor reorder it (beams share it). The step
        # is chosen once per generation: on eager torch a direct torch
        # implementation of `call_with_cache` (`torch_decoding`), else
        # `call_with_cache` itself.
        step = torch_decoding.decoding_step(self, context)
        if step is None:
            step = functools.partial(self.call_with_cache, context=context)

        # The beam sampler also gives the final score of what it returns.
        sampler_kwargs = {}
        if isinstance(self.sampler, UniLMv2BeamSampler):
            sampler_kwargs["return_scores"] = True
        result = self.sampler(
            next=step,
            prompt=decoder_token_ids,
            cache=cache,
            index=1,
            mask=decoder_padding_mask,
            stop_token_ids=stop_token_ids,
            model=self,
            **sampler_kwargs,
        )
        scores = None
        if isinstance(result, (tuple, list)):
            result, scores = result
        given = ops.cast(decoder_padding_mask, "bool")
        if len(result.shape) == 3:  # [batch, num_beams, length]: all beams
            given = given[:, None, :]
        outputs = {
            "decoder_token_ids": result,
            "decoder_padding_mask": self._output_mask(result, given, stop_token_ids),
        }
        if scores is not None:
            outputs["scores"] = scores
        return outputs

    @staticmethod
    def _output_mask(token_ids, given, stop_token_ids):
        """Slot 0 and the slots after the first generated stop token are
        padding; prompt slots (`given`) are kept and never count as stops."""
        slots = ops.arange(ops.shape(token_ids)[-1])
        output = ops.logical_and(slots > 0, ops.ones_like(token_ids, dtype="bool"))
        if stop_token_ids is None:
            return output
        is_stop = ops.zeros_like(token_ids, dtype="bool")
        for stop in stop_token_ids:
            is_stop = ops.logical_or(is_stop, ops.equal(token_ids, stop))
        is_stop = ops.logical_and(is_stop, ops.logical_not(given))
        is_stop = ops.cast(is_stop, "int32")
        after = ops.cumsum(is_stop, axis=-1) - is_stop
        return ops.logical_and(output, ops.equal(after, 0))

    def generate(
        self,
        inputs,
        max_length=None,
        stop_token_ids="auto",
        strip_prompt=False,
        return_scores=False,
    ):
        """Generates target text for source text (and optional prompts).

        Decoding uses the sampler given to `compile()` (greedy by default,
        also for a task that was never compiled).

        Args:
            inputs: a string, a list of strings, a `tf.data.Dataset` of
                them, or a dict `{"encoder_text": ..., "decoder_text": ...}`
                where `decoder_text` is a prompt: the beginning of the
                target, which generation continues (`""` for no prompt). As
                in keras-hub's BART, the output text is the prompt followed
                by its continuation (see `strip_prompt`). Without a
                preprocessor, the dict of tensors that
                `preprocessor.generate_preprocess` makes.
            max_length: int, the number of target slots, prompt included
                (as BART's `decoder_sequence_length`). Defaults to the
                preprocessor's `decoder_sequence_length`.
            stop_token_ids: `"auto"` (the `[SEP]` id), `None` (always run
                `max_length` steps) or a non-empty tuple of ids in the
                vocabulary (anything else is a `ValueError`).
            strip_prompt: bool, return only the continuation, without the
                prompt.
            return_scores: bool, also return the sequence scores. Needs a
                `keras_unilmv2.samplers.UniLMv2BeamSampler` (with
                `num_beams=1` it decodes greedily): the score is the summed
                log-probability of the target tokens (prompt tokens
                included), divided by the GNMT length penalty when the
                sampler's `length_penalty > 0`.

        Returns:
            With a preprocessor: a string per example (a list for a batch,
            one string for a single input). If the sampler has
            `return_all_beams=True`, each example gives instead a list of
            `num_beams` strings, best first. With `return_scores=True`, a
            tuple `(texts, scores)` where `scores` is a float32 numpy array
            `[batch]` (`[batch, num_beams]` for all beams; without the batch
            axis for a single input) aligned with `texts`. Without a
            preprocessor: a dict of numpy arrays, `decoder_token_ids` and
            `decoder_padding_mask` (`[batch, num_beams, length]` for all
            beams), plus `scores` with `return_scores=True`.

        Example:
        ```python
        seq2seq.compile(sampler=keras_unilmv2.samplers.UniLMv2BeamSampler(
            num_beams=4, length_penalty=0.9, return_all_beams=True))
        nbest, scores = seq2seq.generate(
            ["a new document"], max_length=32, return_scores=True)
        # nbest[0]: 4 strings, best first; scores[0]: their 4 scores.
        seq2seq.generate(
            {"encoder_text": ["a new document"], "decoder_text": ["the"]},
            max_length=32)  # a continuation of "the", prompt included
        ```
        """
        for name, value in (("strip_prompt", strip_prompt), ("return_scores", return_scores)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
        check_stop_token_ids(stop_token_ids, self.backbone.vocabulary_size)
        # Also sets the default sampler of a task that was never compiled.
        generate_function = self.make_generate_function()
        if return_scores and not isinstance(self.sampler, UniLMv2BeamSampler):
            raise ValueError(
                "`return_scores=True` needs a beam sampler: compile with "
                "`sampler=keras_unilmv2.samplers.UniLMv2BeamSampler(...)` "
                "(`num_beams=1` decodes greedily). Received: "
                f"sampler={type(self.sampler).__name__}"
            )
        if self.preprocessor is None and isinstance(stop_token_ids, str) and stop_token_ids == "auto":
            raise ValueError(
                "A `preprocessor` must be attached to the model if "
                '`stop_token_ids="auto"`: pass `stop_token_ids=None` or a '
                "tuple of token ids."
            )
        if isinstance(stop_token_ids, str) and stop_token_ids == "auto":
            stop_token_ids = (self.preprocessor.tokenizer.end_token_id,)
        if stop_token_ids is not None:
            stop_token_ids = tuple(stop_token_ids)
        if isinstance(inputs, dict):
            inputs = dict(inputs)  # the base normalization writes into it
        batches, input_is_scalar = self._normalize_generate_inputs(inputs)
        outputs = []
        for x in batches:
            if self.preprocessor is not None:
                x = self.preprocessor.generate_preprocess(x, sequence_length=max_length)
            x = _distribute(x)
            y = generate_function(x, stop_token_ids=stop_token_ids)
            y = {k: ops.convert_to_numpy(v) for k, v in y.items()}
            if strip_prompt:
                given = np.asarray(ops.convert_to_numpy(x["decoder_padding_mask"]), bool)
                if y["decoder_token_ids"].ndim == 3:
                    given = given[:, None, :]
                y["decoder_padding_mask"] = np.logical_and(
                    y["decoder_padding_mask"], np.logical_not(given)
                )
            scores = y.pop("scores", None)
            if self.preprocessor is not None:
                y = self.preprocessor.generate_postprocess(y)
            elif return_scores:
                y["scores"] = scores
            outputs.append((y, scores))
        return self._join_generate_outputs(outputs, input_is_scalar, return_scores)

    def _join_generate_outputs(self, outputs, input_is_scalar, return_scores):
        if self.preprocessor is None:
            return {
                key: np.concatenate([y[key] for y, _ in outputs], axis=0)
                for key in outputs[0][0]
            }
        texts = [text for y, _ in outputs for text in y]
        if not return_scores:
            return texts[0] if input_is_scalar else texts
        scores = np.concatenate([s for _, s in outputs], axis=0).astype("float32")
        if input_is_scalar:
            return texts[0], scores[0]
        return texts, scores

    def get_compile_config(self):
        """Keras' compile config plus the sampler, so that a saved model
        comes back with the sampler it was compiled with."""
        config = super().get_compile_config()
        if config and getattr(self, "sampler", None) is not None:
            config["sampler"] = keras.saving.serialize_keras_object(self.sampler)
        return config

    def compile_from_config(self, config):
        """Compiles as saved: optimizer, loss, metrics and sampler."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        return config
