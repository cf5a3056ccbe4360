"""PMLM pre-training: the autoencoding and partially autoregressive losses."""

import keras
from keras import ops
from keras_hub.models import Task

from keras_unilmv2 import masks
from keras_unilmv2.models.fine_tuning import shuffle_inputs
from keras_unilmv2.models.task_variables import BackboneVariablesMixin
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_pmlm_preprocessor import UniLMv2PMLMPreprocessor
from keras_unilmv2.utils.preset_utils import PresetMixin


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2PMLM(PresetMixin, BackboneVariablesMixin, Task):
    """UniLMv2 pseudo-masked LM pre-training (Bao et al., 2020).

    One forward pass of the backbone over the PMLM layout built by
    `UniLMv2PMLMPreprocessor` (corrupted text with `[M]`, then per
    factorization step the pseudo masks `[P]` and the original tokens, under
    the blockwise attention mask). The inputs are O(L) per slot (see
    `keras_unilmv2.masks.PMLM_MODEL_INPUTS`): token ids, position ids, the
    kind of every slot (context, pseudo, original, padding) and its
    factorization step, plus the `[M]` and `[P]` slots to score; the model
    builds the 3-D attention mask from the slot descriptors in its graph
    (`keras_unilmv2.masks.pmlm_backbone_inputs`), so the host never ships
    an `[L, L]` tensor. The pretrained LM head
    (`backbone.lm_head`, tied to the word embeddings) is applied only at the
    `[M]` slots (output `"ae"`, autoencoding) and at the `[P]` slots (output
    `"par"`, partially autoregressive); the backbone's last layer computes
    its output only for those slots (`UniLMv2Backbone.encode`), the rest of
    it is never read. With the default `compile()` the
    training loss is `L_AE + L_PAR`, each the mean cross-entropy over its
    real predictions (computed in float32), and both accuracies are
    reported (`ae_accuracy`, `par_accuracy`).

    Args:
        backbone: a `UniLMv2Backbone`.
        preprocessor: a `UniLMv2PMLMPreprocessor` or None.

    Example:
    ```python
    backbone = keras_unilmv2.UniLMv2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=4,
        num_heads=4, hidden_dim=256, intermediate_dim=1024,
    )
    preprocessor = keras_unilmv2.UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=128
    )
    pmlm = keras_unilmv2.UniLMv2PMLM(backbone, preprocessor)
    pmlm.fit(text_dataset, epochs=1)
    ```
    """

    backbone_cls = UniLMv2Backbone
    # Not read by this task's outputs: not trained by it (`task_variables`).
    unused_backbone_layers = ("pooled_dense",)
    preprocessor_cls = UniLMv2PMLMPreprocessor

    def __init__(self, backbone, preprocessor=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor

        # === Functional Model ===
        def int_input(name, rank=1):
            return keras.Input((None,) * rank, dtype="int32", name=name)

        inputs = {name: int_input(name) for name in masks.PMLM_MODEL_INPUTS}
        # The O(L) slot descriptors become the backbone's inputs here, in the
        # graph: the dense [L, L] attention mask is built on the device by
        # the one PMLM mask rule (`masks.pmlm_attention_mask`).
        backbone_inputs = masks.pmlm_backbone_inputs(inputs, ops="keras")
        # Only the `[M]` and `[P]` slots are scored: the last layer computes
        # its output for those rows alone (`backbone.encode`), the heads then
        # read rows `0..K_M-1` (AE) and `K_M..K_M+K_P-1` (PAR) of it.
        mask_positions = inputs["mask_positions"]
        pseudo_positions = inputs["pseudo_positions"]
        scored = backbone.encode(
            backbone_inputs,
            output_positions=ops.concatenate([mask_positions, pseudo_positions], axis=1),
        )
        ae_rows = ops.cumsum(ops.ones_like(mask_positions), axis=1) - 1
        par_rows = (
            ops.cumsum(ops.ones_like(pseudo_positions), axis=1)
            - 1
            + ops.sum(ops.ones_like(mask_positions), axis=1, keepdims=True)
        )
        outputs = {
            "ae": backbone.lm_head(scored, positions=ae_rows),
            "par": backbone.lm_head(scored, positions=par_rows),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # The graph uses the backbone's layers, not the backbone as one node:
        # track it as a whole (its pooler included) on every backend, as a
        # task built on `backbone(inputs)` does.
        if self.backbone not in self._layers:
            self._layers.append(self.backbone)

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        weighted_metrics="auto",
        **kwargs,
    ):
        """Configures pre-training, with the paper's settings by default.

        `optimizer="auto"`: AdamW(1e-4, beta_2=0.98, epsilon=1e-6, weight
        decay 0.01, none on biases and LayerNorm), gradient clipping at 1.0.
        `loss="auto"`: sparse cross-entropy on `"ae"` and on `"par"`, each a
        mean over real predictions, summed. `weighted_metrics="auto"`:
        accuracy of each.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(
                1e-4, beta_2=0.98, epsilon=1e-6, weight_decay=0.01, clipnorm=1.0
            )
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        if loss == "auto":
            loss = {
                name: keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True, reduction="mean_with_sample_weight"
                )
                for name in ("ae", "par")
            }
        if weighted_metrics == "auto":
            weighted_metrics = {
                name: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
                for name in ("ae", "par")
            }
        super().compile(
            optimizer=optimizer,
            loss=loss,
            weighted_metrics=weighted_metrics,
            **kwargs,
        )

    def fit(self, x=None, y=None, batch_size=None, sample_weight=None, shuffle=None, **kwargs):
        """As `keras.Model.fit`; array-like inputs (e.g. a list of texts) are
        reshuffled every epoch unless `shuffle=False`: keras-hub turns them
        into a dataset, for which Keras ignores `shuffle`. A dataset keeps
        its own order (the default `None` does not ask Keras to shuffle it,
        so Keras does not warn that it cannot)."""
        x, y, sample_weight, batch_size, shuffle = shuffle_inputs(
            x, y, sample_weight, batch_size, shuffle
        )
        return super().fit(
            x=x, y=y, batch_size=batch_size, sample_weight=sample_weight, shuffle=shuffle,
            **kwargs,
        )

    def train_on_batch(self, x, y=None, sample_weight=None, **kwargs):
        # keras-hub's pipeline version converts `y` and `sample_weight` with
        # one `convert_to_tensor`, which fails on this task's dicts.
        data = self.preprocess_samples(x, y, sample_weight)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y, sample_weight = keras.tree.map_structure(
            lambda t: None if t is None else ops.convert_to_tensor(t),
            (x, y, sample_weight),
        )
        return keras.Model.train_on_batch(
            self, x=x, y=y, sample_weight=sample_weight, **kwargs
        )
