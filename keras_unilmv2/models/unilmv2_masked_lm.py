"""UniLMv2 masked language model (fill-in with the pretrained tied head)."""

import numbers

import keras
import numpy as np
from keras_hub.models import MaskedLM

from keras_unilmv2.models.fine_tuning import FineTuningMixin
from keras_unilmv2.models.task_variables import BackboneVariablesMixin
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_masked_lm_preprocessor import (
    UniLMv2MaskedLMPreprocessor,
)
from keras_unilmv2.utils.preset_utils import PresetMixin

MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask", "mask_positions")


def _softmax(logits):
    logits = logits.astype("float64")
    logits = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2MaskedLM(PresetMixin, FineTuningMixin, BackboneVariablesMixin, MaskedLM):
    """UniLMv2 masked language model.

    Predicts the tokens at `mask_positions` with the pretrained LM head that
    every UniLMv2 backbone carries (`backbone.lm_head`: dense, gelu,
    LayerNorm, output tied to the word embeddings, bias). The task adds no
    weights of its own, so a converted checkpoint fills in masks with no
    training, and fine-tuning the task fine-tunes that head.

    Training (`fit`/`evaluate` on raw text) masks like BERT through
    `UniLMv2MaskedLMPreprocessor`. `predict()` on raw text, and
    `fill_mask()`, use the `[MASK]` tokens written in the text instead (no
    random masking).

    Args:
        backbone: a `keras_unilmv2.models.UniLMv2Backbone`.
        preprocessor: a `UniLMv2MaskedLMPreprocessor` or `None`. With
            `None`, the model takes dicts of `token_ids`, `segment_ids`,
            `padding_mask` (`[batch, length]`) and `mask_positions`
            (`[batch, K]`).

    Outputs:
        Logits `[batch, K, vocabulary_size]` at `mask_positions`.

    Examples:
    ```python
    masked_lm = keras_unilmv2.models.UniLMv2MaskedLM.from_preset(
        "/path/to/preset"
    )
    masked_lm.fill_mask("the [MASK] sat on the mat .", top_k=3)
    # [[{"token": "cat", "token_id": 2368, "score": 0.41}, ...]]

    # Pre-train or fine-tune on raw text (BERT-style masking).
    masked_lm.fit(["the quick fox ran .", "the dog sat ."], batch_size=2)

    # On preprocessed inputs.
    masked_lm = keras_unilmv2.models.UniLMv2MaskedLM(backbone)
    logits = masked_lm.predict({
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": padding_mask,
        "mask_positions": mask_positions,
    })
    ```
    """

    backbone_cls = UniLMv2Backbone
    # Not read by this task's outputs: not trained by it (`task_variables`).
    unused_backbone_layers = ("pooled_dense",)
    preprocessor_cls = UniLMv2MaskedLMPreprocessor

    def __init__(self, backbone, preprocessor=None, **kwargs):
        lm_head = getattr(backbone, "lm_head", None)
        if lm_head is None:
            raise ValueError(
                "`backbone` must carry the pretrained LM head as "
                "`backbone.lm_head` (a `UniLMv2Backbone`). Received: "
                f"backbone={backbone!r}"
            )
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor

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
        outputs = lm_head(sequence_output, positions=inputs["mask_positions"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    # --- Inference on written [MASK] tokens ---------------------------------

    def preprocess_samples(self, x, y=None, sample_weight=None):
        if getattr(self, "_fill_written_masks", False) and self.preprocessor:
            return self.preprocessor.fill_mask_preprocess(x)
        return super().preprocess_samples(x, y=y, sample_weight=sample_weight)

    def predict(self, x=None, batch_size=None, **kwargs):
        """Logits at the `[MASK]` tokens written in the text.

        With a preprocessor attached, raw text is packed with
        `fill_mask_preprocess` (no random masking): row i of the output
        holds, in order, the logits of the `[MASK]` tokens of text i,
        padded to `mask_selection_length` rows. Without a preprocessor this
        is `keras.Model.predict` on the given dicts.
        """
        self._fill_written_masks = True
        try:
            return super().predict(x=x, batch_size=batch_size, **kwargs)
        finally:
            self._fill_written_masks = False

    def fill_mask(self, x, top_k=5, batch_size=None):
        """The `top_k` most likely tokens at every written `[MASK]`.

        Args:
            x: a string with one or more `"[MASK]"`, a batch of such
                strings (list or array), or a pair `(first, second)`.
            top_k: int, how many candidates to return per mask.
            batch_size: optional batch size of the forward passes.

        Returns:
            For one string: a list with one entry per `[MASK]` (in text
            order), each a list of `top_k` dicts `{"token", "token_id",
            "score"}` sorted by decreasing probability (`score` is the
            softmax probability over the vocabulary). For a batch: a list of
            those, one per text. A text without `[MASK]` gives `[]`.
        """
        if self.preprocessor is None:
            raise ValueError(
                "`fill_mask` needs a preprocessor to read the text. Build the "
                "task with `preprocessor=UniLMv2MaskedLMPreprocessor(...)` or "
                "load it with `from_preset`."
            )
        vocabulary_size = self.backbone.vocabulary_size
        if (
            isinstance(top_k, bool)
            or not isinstance(top_k, numbers.Integral)
            or not 1 <= top_k <= vocabulary_size
        ):
            raise ValueError(
                f"`top_k` must be an integer in [1, {vocabulary_size}] (the "
                f"vocabulary size). Received: top_k={top_k!r}"
            )
        inputs = self.preprocessor.fill_mask_preprocess(x)
        inputs = {
            key: np.asarray(keras.ops.convert_to_numpy(value))
            for key, value in inputs.items()
        }
        unbatched = inputs["token_ids"].ndim == 1
        if unbatched:
            inputs = {key: value[None] for key, value in inputs.items()}
        # `keras.Model.predict`: the inputs are already preprocessed.
        logits = keras.Model.predict(
            self, inputs, batch_size=batch_size, verbose=0
        )
        probabilities = _softmax(np.asarray(keras.ops.convert_to_numpy(logits)))
        mask_id = self.preprocessor.tokenizer.mask_token_id
        num_masks = np.minimum(
            (inputs["token_ids"] == mask_id).sum(axis=1),
            inputs["mask_positions"].shape[1],
        )
        results = []
        for row, count in enumerate(num_masks):
            masks = []
            for slot in range(int(count)):
                p = probabilities[row, slot]
                best = np.argsort(-p, kind="stable")[:top_k]
                masks.append(
                    [
                        {
                            "token": self.preprocessor.tokenizer.id_to_token(
                                int(i)
                            ),
                            "token_id": int(i),
                            "score": float(p[i]),
                        }
                        for i in best
                    ]
                )
            results.append(masks)
        return results[0] if unbatched else results
