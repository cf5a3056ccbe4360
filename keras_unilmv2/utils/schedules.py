"""Learning-rate schedules."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak_learning_rate`, then linear decay to 0.

    The schedule of UniLMv2 pre-training (peak 6e-4 over 24k warm-up steps
    for the base model) and of s2s-ft fine-tuning.

    Args:
        peak_learning_rate: float.
        warmup_steps: int >= 0.
        total_steps: int > warmup_steps; the rate reaches 0 there.

    Example:
    >>> schedule = WarmupLinearDecay(1e-3, warmup_steps=10, total_steps=100)
    >>> float(schedule(5)), float(schedule(10)), float(schedule(100))
    (0.0005, 0.001, 0.0)
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps):
        if warmup_steps < 0 or total_steps <= warmup_steps:
            raise ValueError(
                "Need 0 <= warmup_steps < total_steps. Received: "
                f"warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        up = step / warmup
        down = (self.total_steps - step) / float(self.total_steps - self.warmup_steps)
        factor = ops.where(step < self.warmup_steps, up, down)
        return self.peak_learning_rate * ops.clip(factor, 0.0, 1.0)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }
