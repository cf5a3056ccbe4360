"""UniLMv2 text classification (and regression) task."""

import numbers

import keras
import numpy as np
import tensorflow as tf
from keras_hub.models import TextClassifier

from keras_unilmv2.models.fine_tuning import FineTuningMixin
from keras_unilmv2.models.task_variables import BackboneVariablesMixin
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_text_classifier_preprocessor import (
    UniLMv2TextClassifierPreprocessor,
)
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.preprocessing import check_segment_batches
from keras_unilmv2.utils.preprocessing import in_tf_graph
from keras_unilmv2.utils.preprocessing import is_text
from keras_unilmv2.utils.preprocessing import standardize_segments
from keras_unilmv2.utils.preset_utils import PresetMixin

MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def _initializer():
    return keras.initializers.RandomNormal(stddev=0.02)


def _is_array_like(value):
    if value is None or isinstance(value, (str, bytes, dict)):
        return False
    if isinstance(value, tf.data.Dataset):
        return False
    return isinstance(value, (list, tuple, np.ndarray, numbers.Number)) or (
        keras.ops.is_tensor(value)
        or (isinstance(value, tf.Tensor))
    )


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2TextClassifier(PresetMixin, FineTuningMixin, BackboneVariablesMixin, TextClassifier):
    """UniLMv2 for sentence (or sentence-pair) classification and regression.

    The head of the reference `UniLMForSequenceClassification`: the
    backbone's pooled `[CLS]` output (dense + tanh) -> dropout -> a dense
    layer with `num_classes` outputs. With `num_classes=1` the task is a
    regression: the default loss is the mean squared error and the output
    is the raw score (use no softmax).

    `fit()`, `evaluate()` and `predict()` take raw strings (one text or a
    pair `(first, second)` of texts per example) when a `preprocessor` is
    attached, or already preprocessed dicts of `token_ids`, `segment_ids`
    and `padding_mask` when `preprocessor=None`; lists, arrays and
    `tf.data.Dataset`s all work, on every backend.

    Class labels are checked: integer class ids outside `[0, num_classes)`
    raise a `ValueError` before training when `y` is given as an array,
    and fail the input pipeline (a TensorFlow `InvalidArgumentError` naming
    `y` and `num_classes`) when they come from a `tf.data.Dataset`.

    Args:
        backbone: a `keras_unilmv2.models.UniLMv2Backbone`.
        num_classes: int >= 1, the number of classes (1 for regression).
        preprocessor: a `UniLMv2TextClassifierPreprocessor` or `None`.
        activation: optional activation of the output layer, e.g.
            `"softmax"`. Defaults to `None` (logits); the default loss
            follows it (`from_logits=True` unless the activation is
            softmax). Softmax is refused for `num_classes=1`.
        dropout: float in [0, 1), the dropout rate before the output layer.
            Defaults to 0.1, as in the reference.

    Examples:
    ```python
    # From a preset directory (backbone + tokenizer), with a new head.
    classifier = keras_unilmv2.models.UniLMv2TextClassifier.from_preset(
        "/path/to/preset", num_classes=2
    )
    classifier.fit(
        x=(["is the sun big ?", "is it red ?"], ["the sun is big .", "no ."]),
        y=[1, 0],
        batch_size=2,
    )
    classifier.predict(["what a good day ."])

    # Built by hand; regression on preprocessed arrays.
    backbone = keras_unilmv2.models.UniLMv2Backbone(
        vocabulary_size=120, num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=64,
    )
    regressor = keras_unilmv2.models.UniLMv2TextClassifier(
        backbone, num_classes=1, preprocessor=None
    )
    regressor.fit(
        {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
        },
        scores,
    )
    ```
    """

    backbone_cls = UniLMv2Backbone
    # Not read by this task's outputs: not trained by it (`task_variables`).
    unused_backbone_layers = ("lm_head",)
    preprocessor_cls = UniLMv2TextClassifierPreprocessor

    learning_rate_scale = 0.3  # see `FineTuningMixin`

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        activation=None,
        dropout=0.1,
        **kwargs,
    ):
        num_classes = check_int(
            "num_classes", num_classes, 1, hint=" (1 means regression)"
        )
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Real)
            or not 0.0 <= dropout < 1.0
        ):
            raise ValueError(
                f"`dropout` must be a number in [0, 1). Received: "
                f"dropout={dropout!r}"
            )
        activation = keras.activations.get(activation)
        if num_classes == 1 and activation is keras.activations.softmax:
            raise ValueError(
                "A softmax over a single output is always 1: `num_classes=1` "
                "(regression) needs `activation=None` or another "
                f"activation. Received: num_classes=1, activation={activation}"
            )

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.output_dropout = keras.layers.Dropout(
            dropout, dtype=backbone.dtype_policy, name="classifier_dropout"
        )
        self.output_dense = keras.layers.Dense(
            num_classes,
            kernel_initializer=_initializer(),
            activation=activation,
            dtype=backbone.dtype_policy,
            name="logits",
        )

        # === Functional Model ===
        inputs = {
            name: keras.Input(shape=(None,), dtype="int32", name=name)
            for name in MODEL_INPUTS
        }
        pooled = backbone(inputs)["pooled_output"]
        outputs = self.output_dense(self.output_dropout(pooled))
        compile_now = kwargs.pop("compile", True)
        super().__init__(inputs=inputs, outputs=outputs, compile=False, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.activation = activation
        self.dropout = float(dropout)
        if compile_now:
            self.compile()

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        metrics="auto",
        **kwargs,
    ):
        """Configures training.

        `optimizer="auto"`: the fine-tuning default (`keras_unilmv2.models.fine_tuning`): AdamW
        with weight decay 0.01 (none on biases and LayerNorm), clipnorm 1.0,
        a peak rate chosen by the backbone's width (3e-5 from `hidden_dim`
        1024, 7e-5 from 768, 3e-4 from 384, 1e-3 below, times 0.3 for
        this understanding task), warmed up over the
        first 10% of each `fit` call's steps and decayed linearly to 0 at
        its end (s2s-ft's schedule; `fit` sizes it). Classification (`num_classes >= 2`): sparse
        categorical cross-entropy and sparse categorical accuracy.
        Regression (`num_classes=1`): mean squared error and mean absolute
        error. Any argument other than `"auto"` overrides its default.
        """
        if getattr(self, "num_classes", None) == 1:
            if loss == "auto":
                loss = keras.losses.MeanSquaredError()
            if metrics == "auto":
                metrics = [keras.metrics.MeanAbsoluteError()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    # --- Label checks -------------------------------------------------------

    def _label_error(self, detail):
        return (
            "`y` must hold integer class ids in [0, num_classes) = "
            f"[0, {self.num_classes}) (num_classes={self.num_classes}). "
            f"{detail}"
        )

    def _check_labels_eager(self, y):
        if self.num_classes == 1 or not _is_array_like(y):
            return
        if isinstance(y, tf.Tensor):
            y = y.numpy()
        if keras.ops.is_tensor(y):
            y = keras.ops.convert_to_numpy(y)
        labels = np.asarray(y)
        if labels.size == 0:
            return
        if labels.dtype.kind not in "iufb":
            raise ValueError(
                self._label_error(f"Received labels of dtype {labels.dtype}.")
            )
        if labels.ndim >= 2 and labels.shape[-1] == self.num_classes:
            return  # One-hot or probability targets, for a custom loss.
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            bad = labels[labels != np.round(labels)].flat[0]
            raise ValueError(
                self._label_error(f"Received a non-integer label: {bad!r}.")
            )
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise ValueError(
                self._label_error(
                    f"Received {bad.size} label(s) out of range, e.g. "
                    f"{bad.flat[0]!r}."
                )
            )

    def _check_labels_graph(self, y):
        """Checks labels inside `tf.data`; the pipeline fails on bad ones."""

        if self.num_classes == 1 or not isinstance(y, tf.Tensor):
            return y
        if y.shape.rank is not None and y.shape.rank >= 2:
            if y.shape[-1] == self.num_classes:
                return y
        if not (y.dtype.is_integer or y.dtype.is_floating):
            return y
        labels = tf.cast(y, tf.float64)
        message = self._label_error("Received labels out of range:")
        checks = [
            tf.debugging.assert_equal(
                labels,
                tf.round(labels),
                message=self._label_error("Received non-integer labels:"),
            ),
            tf.debugging.assert_greater_equal(
                labels, tf.constant(0.0, tf.float64), message=message
            ),
            tf.debugging.assert_less(
                labels,
                tf.constant(float(self.num_classes), tf.float64),
                message=message,
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(y)

    def preprocess_samples(self, x, y=None, sample_weight=None):
        if y is not None:
            if in_tf_graph():
                y = self._check_labels_graph(y)
            else:
                self._check_labels_eager(y)
        return super().preprocess_samples(x, y=y, sample_weight=sample_weight)

    def _check_text(self, x):
        """Raw text for the preprocessor: eager batch checks up front."""
        if self.preprocessor is None:
            return
        segments = x if isinstance(x, tuple) else (x,)
        if isinstance(x, list) and not x:
            segments = (x,)
        elif not all(is_text(s) or _is_array_like(s) for s in segments):
            return
        check_segment_batches(
            standardize_segments(x, owner="UniLMv2TextClassifier"),
            owner="UniLMv2TextClassifier",
        )

    def fit(self, x=None, y=None, batch_size=None, sample_weight=None,
            validation_data=None, **kwargs):
        """`keras.Model.fit`, with the text and the labels checked first.

        On JAX, a failure at the first step (e.g. a bad label found inside
        a `tf.data` pipeline) leaves the weights as they were.
        """
        self._check_text(x)
        self._check_labels_eager(y)
        if isinstance(validation_data, tuple) and len(validation_data) >= 2:
            self._check_text(validation_data[0])
            self._check_labels_eager(validation_data[1])
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
        """`keras.Model.evaluate`, with the text and the labels checked
        first (weights kept on a failure at the first step on JAX)."""
        self._check_text(x)
        self._check_labels_eager(y)
        return super().evaluate(
            x=x, y=y, batch_size=batch_size, sample_weight=sample_weight, **kwargs
        )

    def predict(self, x=None, batch_size=None, **kwargs):
        """`keras.Model.predict`, with raw text checked first (an empty
        batch or a pair with sides of different sizes raises a
        `ValueError`)."""
        self._check_text(x)
        return super().predict(x=x, batch_size=batch_size, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
            }
        )
        return config
