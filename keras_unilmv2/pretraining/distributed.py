"""Device meshes and multi-process set-up of pre-training runs.

One pre-training run can span several processes (hosts, or several
processes on one machine): every process runs the same command with its
own `--process-id`, and they meet at `--coordinator-address HOST:PORT`.

- JAX: `keras.distribution.initialize` (`jax.distributed`; gloo collectives
  on CPU) and a `keras.distribution` over all processes' devices:
  `DataParallel` (`--mesh data`, the default with several processes) or
  `ModelParallel` on a `(batch, model)` mesh (`--mesh BxM`). Keras feeds
  each process its share of every global batch (the `tf.data` pipeline is
  rebatched and sharded by process).
- PyTorch: `torch.distributed` (gloo on CPU, NCCL on GPU; the process
  group meets at `tcp://HOST:PORT`), data-parallel as
  `DistributedDataParallel` is: every process holds the whole model (the
  chief's initial weights are broadcast), trains on its share of every
  global batch (`shard_batches`), and its gradients are averaged over the
  processes (one all-reduce per batch) before Keras' optimizer applies
  them, so every process keeps the same weights. Keras' `fit`, the
  callbacks and the checkpoints stay as on one process
  (`prepare_torch_model`): each output's loss is divided by the *global*
  sum of its sample weights, and the metrics are summed over processes,
  so the losses, gradients and figures are those of one process reading
  the global batches (in float32 reduction order). Dropout masks are drawn
  per process (as under DDP): with dropout > 0 the runs are statistically,
  not bitwise, the same.
- TensorFlow: refused (see guides/distributed_training.py).
- Process 0 (the chief) alone writes the vocabulary, the checkpoints, the
  history and the preset; the output directory must be on a file system
  all processes see (on one machine it is). A resumed run restores the same
  checkpoint in every process.
"""

import contextlib
import re

import tensorflow as tf

_STATE = {"num_processes": 1, "process_id": 0}


def check_process_options(coordinator_address, num_processes, process_id):
    """Checks the multi-process options (`--coordinator-address`,
    `--num-processes`, `--process-id`); returns them normalised.

    Example:
    ```python
    check_process_options("127.0.0.1:1234", 2, 0)  # ('127.0.0.1:1234', 2, 0)
    ```
    """
    from keras_unilmv2.utils.checks import check_int

    num_processes = check_int("num_processes", num_processes, 1, " (--num-processes)")
    process_id = check_int("process_id", process_id, 0, " (--process-id)")
    if process_id >= num_processes:
        raise ValueError(
            f"`process_id` (--process-id) must be in [0, num_processes) = "
            f"[0, {num_processes}). Received: process_id={process_id}"
        )
    if num_processes > 1:
        if not isinstance(coordinator_address, str) or not re.fullmatch(
            r"[^\s:]+:\d{1,5}", coordinator_address
        ):
            raise ValueError(
                "`coordinator_address` (--coordinator-address) must be 'HOST:PORT' "
                "when `num_processes` > 1 (the address of process 0). "
                f"Received: coordinator_address={coordinator_address!r}"
            )
    elif coordinator_address is not None:
        raise ValueError(
            "`coordinator_address` (--coordinator-address) is for multi-process "
            "runs; pass `num_processes` (--num-processes) > 1 with it. Received: "
            f"coordinator_address={coordinator_address!r}, num_processes=1"
        )
    return coordinator_address, num_processes, process_id


def initialize_processes(coordinator_address, num_processes, process_id):
    """Joins a multi-process run (no-op for one process). Must run before
    the backend does any computation."""
    import keras

    if num_processes == 1:
        _STATE.update(num_processes=1, process_id=0)
        return
    backend = keras.backend.backend()
    if backend == "torch":
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():  # else: a second run in this process
            dist.init_process_group(
                "nccl" if torch.cuda.is_available() else "gloo",
                init_method=f"tcp://{coordinator_address}",
                world_size=num_processes,
                rank=process_id,
            )
        _STATE.update(num_processes=num_processes, process_id=process_id)
        return
    if backend != "jax":
        raise ValueError(
            "Multi-process pre-training (`num_processes` > 1) runs on the JAX "
            f"and PyTorch backends; this process runs {backend!r}. Set "
            "KERAS_BACKEND=jax or KERAS_BACKEND=torch (see "
            "guides/distributed_training.py for TensorFlow's "
            "MultiWorkerMirroredStrategy)."
        )
    import jax

    if not jax.distributed.is_initialized():  # else: a second run in this process
        keras.distribution.initialize(coordinator_address, num_processes, process_id)
    _STATE.update(num_processes=num_processes, process_id=process_id)


def process_count():
    return _STATE["num_processes"]


def process_index():
    return _STATE["process_id"]


def is_chief():
    """Whether this process writes the run's files (process 0)."""
    return _STATE["process_id"] == 0


def barrier(name):
    """Waits until every process reached the barrier `name`."""
    if process_count() == 1:
        return
    if _torch():
        import torch.distributed as dist

        dist.barrier()
        return
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def _torch():
    import keras

    return keras.backend.backend() == "torch"


@contextlib.contextmanager
def gathered_variables(model):
    """For saving in a multi-process run; all processes must enter it.

    Within it, every variable of `model` (and its optimizer) that is sharded
    over several processes holds its whole value in this process (gathered,
    a collective), and no distribution is set: Keras' `save_weights` creates
    a throw-away optimizer, whose variables would otherwise be placed on
    every process' devices, a collective that the chief, saving alone,
    would wait on for ever.
    """
    if process_count() == 1 or _torch():  # PyTorch: every process holds every weight.
        yield
        return
    import jax
    import keras
    from jax.experimental import multihost_utils

    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        variables += list(optimizer.variables)
    swapped = []
    distribution = keras.distribution.distribution()
    try:
        for variable in variables:
            value = variable.value
            if (
                isinstance(value, jax.Array)
                and not value.is_fully_replicated
                and not value.is_fully_addressable
            ):
                whole = multihost_utils.process_allgather(value, tiled=True)
                swapped.append((variable, vars(variable)["_value"]))
                vars(variable)["_value"] = jax.numpy.asarray(whole)
        keras.distribution.set_distribution(None)
        yield
    finally:
        keras.distribution.set_distribution(distribution)
        for variable, value in swapped:
            vars(variable)["_value"] = value


def shard_batches(dataset, batch_size):
    """This process' share of every global batch of `dataset`: with N
    processes, process `i` gets rows `[i * b, (i + 1) * b)` of each batch of
    `batch_size`, `b = batch_size // N` (the whole dataset for one process).
    Keras assembles the global batch from the shares
    (`jax.make_array_from_process_local_data`)."""

    count = process_count()
    if count == 1:
        return dataset
    batches = int(dataset.cardinality())
    shares = dataset.rebatch(batch_size // count).shard(count, process_index())
    if batches >= 0:  # Keep the length known (Keras warns on unknown ends).
        shares = shares.apply(tf.data.experimental.assert_cardinality(batches))
    return shares


def make_distribution(keras, model_parallel):
    """DataParallel over all devices, or ModelParallel on a `batch x model` mesh
    (None for several PyTorch processes: see `prepare_torch_model`).

    With several processes, `keras.distribution.list_devices()` lists every
    process' devices (process 0's first): a `BxM` mesh whose `M` divides the
    devices of one process keeps each model replica inside a process.
    """
    if process_count() > 1 and _torch():
        if model_parallel:
            raise ValueError(
                f"`model_parallel` (--mesh {model_parallel}) runs on JAX; on PyTorch "
                "several processes train data-parallel (`torch.distributed`). "
                f"Received: model_parallel={model_parallel!r}"
            )
        return None  # Data-parallel by `prepare_torch_model`.
    devices = keras.distribution.list_devices()
    if not model_parallel:
        distribution = keras.distribution.DataParallel(devices=devices)
        # `shard_batches` feeds each process its share of the batches.
        distribution.auto_shard_dataset = False
        return distribution
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone

    match = re.fullmatch(r"(\d+)x(\d+)", str(model_parallel).lower())
    if match is None:
        raise ValueError(
            f"`model_parallel` (--mesh) must be 'BxM', e.g. '2x4'. Received: {model_parallel!r}"
        )
    data, model = int(match.group(1)), int(match.group(2))
    if data * model != len(devices):
        raise ValueError(
            f"`--mesh {model_parallel}` needs {data * model} devices; found {len(devices)}."
        )
    local = len(devices) // process_count()
    if process_count() > 1 and local % model:
        raise ValueError(
            f"`--mesh {model_parallel}`: with {process_count()} processes of {local} "
            f"devices each, the model axis ({model}) must divide {local} so that "
            "each model replica stays inside one process."
        )
    mesh = keras.distribution.DeviceMesh((data, model), ["batch", "model"], devices)
    layout_map = UniLMv2Backbone.get_layout_map(mesh)
    distribution = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
    distribution.auto_shard_dataset = False
    return distribution


def _flat_all_reduce(tensors, dist):
    """Sums `tensors` (torch tensors) over the processes with one all-reduce;
    returns the sums, float64-exact for small counts."""
    import torch

    if not tensors:
        return []
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat)
    sums, start = [], 0
    for t in tensors:
        sums.append(flat[start : start + t.numel()].reshape(t.shape).to(t.dtype))
        start += t.numel()
    return sums


def _global_weighted_mean(keras, name, count):
    """Sparse cross-entropy (from logits) as this process' part of the
    weighted mean over the global batch: `count * sum(w * loss) /
    global sum(w)`; the mean over the processes of these values (and of
    their gradients) is the global weighted mean (and its gradient)."""
    import torch.distributed as dist

    class GlobalWeightedMean(keras.losses.Loss):
        def __init__(self):
            super().__init__(name=name, reduction="sum")

        def call(self, y_true, y_pred):
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)

        def __call__(self, y_true, y_pred, sample_weight=None):
            if sample_weight is None:
                sample_weight = keras.ops.ones(keras.ops.shape(y_true), dtype="float32")
            total = keras.ops.sum(keras.ops.cast(sample_weight, "float32")).detach().clone()
            dist.all_reduce(total)
            weighted_sum = super().__call__(y_true, y_pred, sample_weight=sample_weight)
            return weighted_sum * count / keras.ops.maximum(total, 1e-9)

    return GlobalWeightedMean()


def prepare_torch_model(pmlm):
    """Makes a compiled PMLM train data-parallel over several PyTorch
    processes under Keras' own `fit`/`evaluate` (no-op on one process or
    another backend); every process calls it after building the model.

    - The chief's weights are broadcast (the processes start equal).
    - Each output's loss is `N * sum(w * loss) / global sum(w)` (N
      processes): averaged over the processes it is the one-process loss of
      the global batch.
    - The optimizer averages every gradient over the processes (one
      all-reduce of all gradients per batch, before clipping, accumulation
      and the update), as `DistributedDataParallel` does.
    - The metrics (loss trackers, accuracies) are summed over the processes
      whenever Keras reads them, so every process logs the global figures.

    Example (each of 2 processes, after `initialize_processes`):
    ```python
    backbone, pmlm = build_pretraining_model(vocabulary_size=1000)
    prepare_torch_model(pmlm)
    pmlm.fit(distributed.shard_batches(data, batch_size), epochs=1)
    ```
    """
    if process_count() == 1 or not _torch():
        return pmlm
    import keras
    import torch
    import torch.distributed as dist

    count = process_count()
    with torch.no_grad():
        for variable in pmlm.variables:
            dist.broadcast(variable.value.data, 0)
    pmlm.compile(
        optimizer=pmlm.optimizer,
        loss={name: _global_weighted_mean(keras, f"{name}_loss", count) for name in ("ae", "par")},
    )
    optimizer = pmlm.optimizer
    apply = optimizer.apply

    def apply_averaged(grads, trainable_variables=None):
        present = [i for i, g in enumerate(grads) if g is not None]
        sums = _flat_all_reduce([grads[i] for i in present], dist)
        grads = list(grads)
        for i, total in zip(present, sums):
            grads[i] = total / count
        return apply(grads, trainable_variables)

    optimizer.apply = apply_averaged
    get_metrics_result = pmlm.get_metrics_result

    def global_metrics_result():
        variables = [v for metric in pmlm.metrics for v in metric.variables]
        local = [torch.clone(v.value) for v in variables]
        for variable, total in zip(variables, _flat_all_reduce(local, dist)):
            variable.assign(total)
        try:
            return get_metrics_result()
        finally:
            for variable, value in zip(variables, local):
                variable.assign(value)

    pmlm.get_metrics_result = global_metrics_result
    return pmlm
