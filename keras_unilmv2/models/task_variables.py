"""Which of the backbone's variables a task trains.

The backbone carries two heads that not every task reads: the pooler
(`pooled_dense`, the `[CLS]` output that only the text classifier uses) and
the pretrained LM head (`lm_head`: dense, LayerNorm and output bias; its
output projection is the token embedding, which every task uses). A variable
a task's outputs do not depend on gets no gradient, and the backends
disagreed on what to do with it: TensorFlow and PyTorch warned on every
`fit` ("Gradients do not exist for variables ['pooled_dense/kernel', ...]"),
while JAX differentiated it to zeros, so AdamW's weight decay shrank it at
every step (an LM head silently worn down by fine-tuning a classifier).

`BackboneVariablesMixin` lists those variables with the task's
non-trainable ones instead: the optimizer neither sees nor changes them, on
every backend. They still belong to the task (saved with it), and the
backbone itself, or another task built on it, trains them as usual.
`restore_checkpoint` resumes a run from a checkpoint written either way.
"""


class BackboneVariablesMixin:
    """Leaves the backbone layers a task does not read out of its training.

    A task class mixes this in before `keras.Model` and names, in
    `unused_backbone_layers`, the backbone attributes its outputs do not
    depend on (`"pooled_dense"`, `"lm_head"`). Variables they share with
    the rest of the backbone (the LM head's tied token embedding) stay
    trainable.

    Example:
    ```python
    classifier = keras_unilmv2.UniLMv2TextClassifier(backbone, num_classes=2)
    head = backbone.lm_head.output_bias
    any(v is head for v in classifier.trainable_variables)  # False
    any(v is head for v in backbone.trainable_variables)  # True
    ```
    """

    unused_backbone_layers = ()

    def _unused_variable_ids(self):
        # `trainable_variables` is also read while a task is being built,
        # before `self.backbone` exists.
        backbone = getattr(self, "backbone", None)
        if backbone is None or not self.unused_backbone_layers:
            return frozenset()
        unused = set()
        for name in self.unused_backbone_layers:
            unused.update(id(v) for v in getattr(backbone, name).weights)
        unused.difference_update(id(v) for v in backbone.token_embedding.weights)
        return frozenset(unused)

    def _split(self, trainable):
        unused = self._unused_variable_ids()
        return (
            [v for v in trainable if id(v) not in unused],
            [v for v in trainable if id(v) in unused],
        )

    @property
    def trainable_weights(self):
        return self._split(super().trainable_weights)[0]

    @property
    def trainable_variables(self):
        return self._split(super().trainable_variables)[0]

    @property
    def non_trainable_weights(self):
        return super().non_trainable_weights + self._split(super().trainable_weights)[1]

    @property
    def non_trainable_variables(self):
        return super().non_trainable_variables + self._split(super().trainable_variables)[1]


def trainable_variables_with_unused(model):
    """What `model.trainable_variables` listed before tasks left unread
    backbone layers out of training: the layout of an older checkpoint's
    optimizer state."""
    if isinstance(model, BackboneVariablesMixin):
        return super(BackboneVariablesMixin, model).trainable_variables
    return model.trainable_variables


def restore_checkpoint(model, path):
    """Loads the weights file `path` (model and optimizer state) into
    `model` to resume a run, building `model.optimizer` for it first.

    A file written before tasks left unread backbone layers out of training
    (see the module's docstring) holds optimizer state for their variables
    too: that state is read into a copy of the optimizer built over them as
    well, and the rest is copied, variable by variable, into the optimizer,
    so the run continues where it stopped (step count, moments). A file
    whose optimizer state fits neither layout is refused: Keras would skip
    it with a warning, and the run would restart its learning-rate schedule
    from step 0.

    Example:
    ```python
    restore_checkpoint(task, "checkpoints/ckpt-000004.weights.h5")
    ```
    """
    optimizer = model.optimizer
    if optimizer is None:
        model.load_weights(path)
        return
    current = list(model.trainable_variables)
    if not optimizer.built:
        # Its variables must exist to receive the saved state.
        optimizer.build(current)
    saved = _saved_optimizer_size(path)
    if saved is None or saved == len(optimizer.variables):
        model.load_weights(path)
        return
    every = list(trainable_variables_with_unused(model))
    older = None
    if len(every) != len(current):
        older = optimizer.__class__.from_config(optimizer.get_config())
        older.build(every)
    if older is None or len(older.variables) != saved:
        raise ValueError(
            f"Cannot resume from `{path}`: it holds the state of an optimizer "
            f"with {saved} variables, but this model's {type(optimizer).__name__} "
            f"has {len(optimizer.variables)} ({len(current)} trainable "
            "variables). Resume with the settings (model, optimizer, gradient "
            "accumulation, mixed precision) that wrote it."
        )
    older.load_own_variables(_saved_optimizer_state(path))
    by_name = {v.name: v for v in older.variables}
    for variable in optimizer.variables:
        variable.assign(by_name[variable.name])
    import keras

    # The rest of the file: the model's weights (the optimizer's state, in
    # the old layout, is loaded above).
    keras.saving.load_weights(model, path, objects_to_skip=[optimizer])


def _saved_optimizer_size(path):
    """How many variables the optimizer state in a `.weights.h5` file has
    (None: the file holds no optimizer state)."""
    import h5py

    with h5py.File(path, "r") as f:
        group = f.get("optimizer")
        if group is None or "vars" not in group:
            return None
        return len(group["vars"])


def _saved_optimizer_state(path):
    import h5py

    with h5py.File(path, "r") as f:
        return {key: value[()] for key, value in f["optimizer"]["vars"].items()}
