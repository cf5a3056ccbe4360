"""The model `pretrain()` trains: backbone, PMLM task, optimizer, masking."""

MIXED_PRECISION = {None: None, "float32": None, "bfloat16": "mixed_bfloat16",
                   "float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16",
                   "mixed_float16": "mixed_float16"}


def _accumulated_schedule(keras, schedule, accumulation):
    """Wraps a schedule of optimizer updates for gradient accumulation.

    Keras optimizers count every micro-batch in `_iterations` and call the
    schedule with it; this one calls `schedule(iterations // accumulation)`,
    the number of updates made so far, so the rate follows the same curve
    over the updates as without accumulation (constant within an update).
    """
    from keras import ops

    class AccumulatedSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, schedule, accumulation):
            self.schedule = schedule
            self.accumulation = accumulation

        def __call__(self, step):
            return self.schedule(ops.floor_divide(step, self.accumulation))

        def get_config(self):
            return {
                "schedule": keras.saving.serialize_keras_object(self.schedule),
                "accumulation": self.accumulation,
            }

    return AccumulatedSchedule(schedule, accumulation)




def pretraining_preprocessor(
    tokenizer,
    sequence_length,
    seed,
    mask_rate=0.15,
    span_probability=0.4,
    min_span_length=2,
    max_span_length=6,
    mask_token_replacement_rates=None,
):
    """The `UniLMv2PMLMPreprocessor` that `pretrain()` masks with.

    Example:
    ```python
    preprocessor = pretraining_preprocessor(tokenizer, 128, seed=0, mask_rate=0.2)
    x, y, sample_weight = preprocessor(["the quick fox ran to the park ."])
    ```
    """
    from keras_unilmv2.models.unilmv2_pmlm_preprocessor import UniLMv2PMLMPreprocessor

    return UniLMv2PMLMPreprocessor(
        tokenizer,
        sequence_length=sequence_length,
        mask_rate=mask_rate,
        span_probability=span_probability,
        min_span_length=min_span_length,
        max_span_length=max_span_length,
        mask_token_replacement_rates=mask_token_replacement_rates,
        seed=seed,
    )


def build_pretraining_model(
    vocabulary_size,
    num_layers=4,
    num_heads=4,
    hidden_dim=256,
    intermediate_dim=1024,
    max_sequence_length=512,
    steps=1000,
    warmup_steps=100,
    learning_rate=5e-4,
    gradient_accumulation_steps=1,
    mixed_precision=None,
    init_from=None,
    dropout=0.1,
):
    """The compiled `UniLMv2PMLM` (and its backbone) that `pretrain()` trains.

    AdamW (beta_2 0.98, epsilon 1e-6, weight decay 0.01 but not on biases
    and layer-norm scales, clipnorm 1.0) over a warm-up + linear-decay
    schedule counted in optimizer updates. With `gradient_accumulation_steps`
    N > 1 the optimizer averages the gradients of N batches per update (Keras'
    `gradient_accumulation_steps`) and the schedule reads `iterations // N`.
    `mixed_precision` (`None`, `"bfloat16"` or `"float16"`) builds the
    layers under the `mixed_*` policy (variables stay float32; with
    float16, `compile` adds dynamic loss scaling). `dropout` is the
    backbone's (0 for runs compared bit for bit, e.g. 1 against 2 PyTorch
    processes, which draw their dropout masks apart).

    Returns:
        `(backbone, pmlm)`.

    Example:
    ```python
    backbone, pmlm = build_pretraining_model(
        8192, steps=1000, gradient_accumulation_steps=4, mixed_precision="bfloat16"
    )
    pmlm.optimizer.gradient_accumulation_steps  # 4
    ```
    """
    import keras

    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
    from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM
    from keras_unilmv2.utils.schedules import WarmupLinearDecay

    policy = MIXED_PRECISION.get(mixed_precision, mixed_precision)
    dtype = None if policy is None else keras.DTypePolicy(policy)
    backbone = UniLMv2Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        max_sequence_length=max_sequence_length,
        dropout=dropout,
        dtype=dtype,
    )
    if init_from is not None:
        # Continue pre-training a preset (its vocabulary must be the one used).
        start = UniLMv2Backbone.from_preset(init_from)

        def architecture(model):
            return {k: v for k, v in model.get_config().items() if k not in ("name", "dtype", "dropout")}

        if architecture(start) != architecture(backbone):
            raise ValueError(
                f"`--init-from {init_from}` has another architecture than the "
                "one asked for; pass the same dimensions and vocabulary."
            )
        backbone.set_weights(start.get_weights())
    pmlm = UniLMv2PMLM(backbone, preprocessor=None, dtype=dtype)
    schedule = WarmupLinearDecay(learning_rate, warmup_steps, steps)
    if gradient_accumulation_steps > 1:
        schedule = _accumulated_schedule(keras, schedule, gradient_accumulation_steps)
    optimizer = keras.optimizers.AdamW(
        schedule,
        beta_2=0.98,
        epsilon=1e-6,
        weight_decay=0.01,
        clipnorm=1.0,
        gradient_accumulation_steps=(
            gradient_accumulation_steps if gradient_accumulation_steps > 1 else None
        ),
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    pmlm.compile(optimizer=optimizer)
    return backbone, pmlm
