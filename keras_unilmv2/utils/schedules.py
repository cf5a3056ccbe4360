"""Learning-rate schedules."""

import keras
from keras import ops


def warmup_linear_decay(step, peak_learning_rate, warmup_steps, total_steps):
    """The rate at float `step`: a linear rise from 0 to the peak over
    `warmup_steps`, then a linear fall to 0 at `total_steps`."""
    up = step / float(max(warmup_steps, 1))
    down = (total_steps - step) / float(total_steps - warmup_steps)
    factor = ops.where(step < warmup_steps, up, down)
    return peak_learning_rate * ops.clip(factor, 0.0, 1.0)


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
    >>> [round(float(schedule(s)), 6) for s in (5, 10, 100)]
    [0.0005, 0.001, 0.0]
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
        return warmup_linear_decay(
            ops.cast(step, "float32"),
            self.peak_learning_rate,
            self.warmup_steps,
            self.total_steps,
        )

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class FineTuningSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Warm-up and linear decay over each `fit` call: s2s-ft's schedule,
    sized by the task.

    The rate rises linearly from 0 to `peak_learning_rate` over the first
    `warmup_fraction` of a `fit` call's steps and decays linearly to 0 at its
    last step (s2s-ft: warm-up, then linear decay to 0 at
    `num_training_steps`). The tasks' default optimizers carry one, and their
    `fit` sizes it with `plan(first_step, steps)` from the epochs and the
    steps per epoch, so a user never counts steps. Until it is planned (or
    when `fit` cannot know its length, e.g. an unsized dataset without
    `steps_per_epoch`) it is the constant `peak_learning_rate`.

    Args:
        peak_learning_rate: float > 0.
        warmup_fraction: float in [0, 1), the share of a `fit` call's steps
            spent warming up.
        first_step, warmup_steps, total_steps: the plan (set by `plan`).

    Example:
    >>> schedule = FineTuningSchedule(1e-4, warmup_fraction=0.1)
    >>> schedule.plan(first_step=0, steps=100)
    >>> [round(float(schedule(s)), 6) for s in (0, 5, 10, 55, 100)]
    [0.0, 5e-05, 0.0001, 5e-05, 0.0]
    """

    def __init__(
        self,
        peak_learning_rate,
        warmup_fraction=0.1,
        first_step=0,
        warmup_steps=0,
        total_steps=None,
    ):
        if not peak_learning_rate > 0:
            raise ValueError(
                "`peak_learning_rate` must be > 0. Received: "
                f"peak_learning_rate={peak_learning_rate!r}"
            )
        if not 0 <= warmup_fraction < 1:
            raise ValueError(
                "`warmup_fraction` must be in [0, 1). Received: "
                f"warmup_fraction={warmup_fraction!r}"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_fraction = float(warmup_fraction)
        self.first_step = int(first_step)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = None if total_steps is None else int(total_steps)

    def plan(self, first_step, steps):
        """Spans warm-up and decay over `steps` steps from `first_step`
        (`None` steps: the constant peak rate)."""
        self.first_step = int(first_step)
        if steps is None:
            self.warmup_steps, self.total_steps = 0, None
            return
        steps = max(int(steps), 1)
        self.total_steps = steps
        self.warmup_steps = min(int(round(self.warmup_fraction * steps)), steps - 1)

    def __call__(self, step):
        if self.total_steps is None:
            return ops.convert_to_tensor(self.peak_learning_rate, "float32")
        return warmup_linear_decay(
            ops.cast(step, "float32") - float(self.first_step),
            self.peak_learning_rate,
            self.warmup_steps,
            self.total_steps,
        )

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_fraction": self.warmup_fraction,
            "first_step": self.first_step,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }
