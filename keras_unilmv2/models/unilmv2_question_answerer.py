"""UniLMv2 extractive question answering (SQuAD-style span prediction)."""

import keras
from keras import ops
from keras_hub.models import Task

from keras_unilmv2.models.fine_tuning import FineTuningMixin
from keras_unilmv2.models.task_variables import BackboneVariablesMixin
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_question_answerer_preprocessor import (
    MODEL_INPUTS,
)
from keras_unilmv2.models.unilmv2_question_answerer_preprocessor import (
    UniLMv2QuestionAnswererPreprocessor,
)
from keras_unilmv2.utils.preprocessing import in_tf_graph
from keras_unilmv2.utils.preprocessing import is_text
from keras_unilmv2.utils.preset_utils import PresetMixin

# Added to the logits of slots that can be neither start nor end (question,
# [SEP], padding). The logits are float32, where this is exact and its
# softmax weight is exactly 0.
MASKED_LOGIT = -1e9


def _is_raw_text(x):
    return (
        isinstance(x, (tuple, list))
        and len(x) == 2
        and all(is_text(part) for part in x)
    )


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2QuestionAnswerer(PresetMixin, FineTuningMixin, BackboneVariablesMixin, Task):
    """UniLMv2 for extractive question answering (SQuAD 1.1 and 2.0).

    A dense layer with two outputs over the backbone's token states gives a
    start and an end logit per slot. Slots outside `span_mask` (the
    question, `[SEP]`, padding) get -1e9, so the softmax runs over the
    context tokens and `[CLS]`, which stands for "no answer" (SQuAD 2.0).
    The output is float32 `[batch, 2, length]`: row 0 the start logits,
    row 1 the end logits. With labels `y = [batch, 2]` (start and end slot)
    the default loss, sparse categorical cross-entropy from logits averaged
    over both rows, is the mean of the start and the end cross-entropy.

    Inputs come from `UniLMv2QuestionAnswererPreprocessor`, which packs
    `[CLS] question [SEP] context [SEP]` and splits long contexts into
    windows with a `doc_stride`. It runs in Python, so `fit()`,
    `evaluate()` and `predict()` preprocess raw `(questions, contexts)`
    before handing arrays to Keras (one row per window). `answer()` runs the
    whole pipeline and returns answer strings with character offsets.

    Args:
        backbone: a `keras_unilmv2.models.UniLMv2Backbone`.
        preprocessor: a `UniLMv2QuestionAnswererPreprocessor` or `None`.
            With `None` the model takes dicts of `token_ids`,
            `segment_ids`, `padding_mask` and `span_mask`.

    Examples:
    ```python
    qa = keras_unilmv2.models.UniLMv2QuestionAnswerer.from_preset(
        "/path/to/preset"
    )
    questions = ["Who sat on the mat?", "Where did the dog run?"]
    contexts = ["The cat sat on the mat.", "The dog ran to the park."]
    answers = {"answer_start": [0, 15], "answer_text": ["The cat", "the park"]}
    qa.fit((questions, contexts), answers, batch_size=2, epochs=2)
    qa.answer(questions, contexts)
    # [{"text": "The cat", "start": 0, "end": 7, "score": ..., ...}, ...]

    # Step by step.
    features = qa.preprocessor.encode(questions, contexts)
    logits = qa.predict({k: features[k] for k in (
        "token_ids", "segment_ids", "padding_mask", "span_mask")})
    qa.preprocessor.postprocess(logits, features, contexts)
    ```
    """

    backbone_cls = UniLMv2Backbone
    # Not read by this task's outputs: not trained by it (`task_variables`).
    unused_backbone_layers = ("pooled_dense", "lm_head")
    preprocessor_cls = UniLMv2QuestionAnswererPreprocessor

    learning_rate_scale = 0.3  # see `FineTuningMixin`

    def __init__(self, backbone, preprocessor=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.span_dense = keras.layers.Dense(
            2,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=backbone.dtype_policy,
            name="span_logits",
        )

        # === Functional Model ===
        inputs = {
            name: keras.Input(shape=(None,), dtype="int32", name=name)
            for name in MODEL_INPUTS
        }
        sequence_output = backbone(
            {
                "token_ids": inputs["token_ids"],
                "segment_ids": inputs["segment_ids"],
                "padding_mask": inputs["padding_mask"],
            }
        )["sequence_output"]
        logits = self.span_dense(sequence_output)  # [batch, length, 2]
        logits = ops.cast(ops.transpose(logits, (0, 2, 1)), "float32")
        allowed = ops.expand_dims(ops.cast(inputs["span_mask"], "bool"), 1)
        outputs = ops.where(allowed, logits, MASKED_LOGIT)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        metrics="auto",
        **kwargs,
    ):
        """Configures training.

        Defaults: the fine-tuning default (`keras_unilmv2.models.fine_tuning`): AdamW
        with weight decay 0.01 (none on biases and LayerNorm), clipnorm 1.0,
        a peak rate chosen by the backbone's width (3e-5 from `hidden_dim`
        1024, 7e-5 from 768, 3e-4 from 384, 1e-3 below, times 0.3 for
        this understanding task), warmed up over the
        first 10% of each `fit` call's steps and decayed linearly to 0 at
        its end (s2s-ft's schedule; `fit` sizes it); sparse categorical cross-entropy from logits
        over the `[batch, 2, length]` output, which is the mean of the start
        and end cross-entropies; sparse categorical accuracy (the fraction
        of start and end slots predicted exactly). Any argument other than
        `"auto"` overrides its default.
        """
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    # --- raw text is windowed in Python before Keras sees it ----------------

    def _require_preprocessor(self):
        if self.preprocessor is None:
            raise ValueError(
                "Raw `(questions, contexts)` need a preprocessor. Build the "
                "task with `preprocessor=UniLMv2QuestionAnswererPreprocessor"
                "(...)`, or pass preprocessed dicts of "
                f"{list(MODEL_INPUTS)}."
            )
        return self.preprocessor

    def _windows(self, x, y=None, sample_weight=None):
        """Raw text -> window arrays; anything else is returned unchanged."""
        if not _is_raw_text(x):
            return x, y, sample_weight
        data = self._require_preprocessor()(x, y, sample_weight)
        return keras.utils.unpack_x_y_sample_weight(data)

    def preprocess_samples(self, x, y=None, sample_weight=None):
        if isinstance(x, dict):
            x = {name: x[name] for name in MODEL_INPUTS if name in x}
            return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
        if in_tf_graph():
            raise ValueError(
                "UniLMv2QuestionAnswerer cannot window raw text inside "
                "`tf.data` (one example may become several rows). Pass "
                "`(questions, contexts)` lists to `fit`/`evaluate`/`predict`, "
                "or build the dataset from `preprocessor.encode(...)` arrays."
            )
        return self._require_preprocessor()(x, y, sample_weight)

    def fit(self, x=None, y=None, batch_size=None, sample_weight=None,
            validation_data=None, **kwargs):
        x, y, sample_weight = self._windows(x, y, sample_weight)
        if isinstance(validation_data, tuple) and _is_raw_text(
            validation_data[0]
        ):
            validation_data = self._windows(*validation_data)
            validation_data = tuple(v for v in validation_data if v is not None)
        return super().fit(
            x=x,
            y=y,
            batch_size=batch_size,
            sample_weight=sample_weight,
            validation_data=validation_data,
            **kwargs,
        )

    def evaluate(self, x=None, y=None, batch_size=None, sample_weight=None,
                 **kwargs):
        x, y, sample_weight = self._windows(x, y, sample_weight)
        return super().evaluate(
            x=x, y=y, batch_size=batch_size, sample_weight=sample_weight, **kwargs
        )

    def predict(self, x=None, batch_size=None, **kwargs):
        """Start/end logits `[windows, 2, length]`, one row per window.

        Raw `(questions, contexts)` are windowed first; use `answer()` for
        answer strings, or `preprocessor.postprocess()` on these logits
        together with `preprocessor.encode()` features.
        """
        x, _, _ = self._windows(x)
        return super().predict(x=x, batch_size=batch_size, **kwargs)

    def answer(
        self,
        questions,
        contexts,
        max_answer_length=30,
        null_score_threshold=0.0,
        batch_size=None,
    ):
        """Answers questions about contexts.

        Args:
            questions: a string or a batch of strings.
            contexts: a string or a batch of strings, one per question.
            max_answer_length: int, the longest answer in tokens.
            null_score_threshold: float, or `None` to always answer with a
                span (SQuAD 1.1). See
                `UniLMv2QuestionAnswererPreprocessor.postprocess`.
            batch_size: optional batch size (in windows) of the forward
                passes.

        Returns:
            One dict per example (a dict for one string): `text`, `start`,
            `end` (character offsets into the context; `""`, -1, -1 for
            no answer), `score` and `null_score`.
        """
        preprocessor = self._require_preprocessor()
        features = preprocessor.encode(questions, contexts)
        inputs = {name: features[name] for name in MODEL_INPUTS}
        # `keras.Model.predict`: the inputs are already preprocessed.
        logits = keras.Model.predict(
            self, inputs, batch_size=batch_size, verbose=0
        )
        return preprocessor.postprocess(
            logits,
            features,
            contexts,
            max_answer_length=max_answer_length,
            null_score_threshold=null_score_threshold,
        )
