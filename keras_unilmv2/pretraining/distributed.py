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
  callbacks and the checkpoints stay as on one process (`prepare_model`):
  each output's loss is divided by the *global* sum of its sample
  weights, and the metrics are summed over processes, so the losses,
  gradients and figures are those of one process reading the global
  batches (in float32 reduction order). Dropout masks are drawn per
  process (as under DDP): with dropout > 0 the runs are statistically,
  not bitwise, the same.
- TensorFlow: `tf.distribute.MultiWorkerMirroredStrategy` (one replica
  per process on CPU; `TF_CONFIG` written from the flags for workers on
  one host at `HOST:PORT`, `HOST:PORT+1`, ..., or set by the user across
  machines: `tf_config`). The model is built in the strategy's scope
  (`scope()`: mirrored variables, process 0's initial values), each
  process reads its share of every global batch as it is (`distribute`),
  and Keras' own `fit`/`evaluate` train data-parallel as on PyTorch
  (`prepare_model`): the same global loss, the gradients summed over the
  processes before clipping, the metrics summed over them. Dropout masks
  are drawn per process, as on PyTorch. No gradient accumulation (Keras
  3.15's optimizer accumulates in a `cond` that syncs the workers).
- Process 0 (the chief) alone writes the vocabulary, the checkpoints, the
  history and the preset; the output directory must be on a file system
  all processes see (on one machine it is). A resumed run restores the same
  checkpoint in every process.
"""

import contextlib
import functools
import json
import os
import re

import tensorflow as tf

# `strategy`: the `MultiWorkerMirroredStrategy` of several TensorFlow processes.
_STATE = {"num_processes": 1, "process_id": 0, "strategy": None}


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
    the backend does any computation.

    JAX: `keras.distribution.initialize`; PyTorch: a `torch.distributed`
    process group at `tcp://HOST:PORT`; TensorFlow: `TF_CONFIG` (see
    `tf_config`) and the run's `MultiWorkerMirroredStrategy`, created once
    per process (a `ValueError` if `TF_CONFIG` disagrees with the flags).
    """
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
    if backend == "tensorflow":
        if _STATE["strategy"] is None:  # else: a second run in this process
            config = tf_config(coordinator_address, num_processes, process_id)
            os.environ["TF_CONFIG"] = json.dumps(config)
            _STATE["strategy"] = tf.distribute.MultiWorkerMirroredStrategy()
        _STATE.update(num_processes=num_processes, process_id=process_id)
        return
    import jax

    if not jax.distributed.is_initialized():  # else: a second run in this process
        keras.distribution.initialize(coordinator_address, num_processes, process_id)
    _STATE.update(num_processes=num_processes, process_id=process_id)


def tf_config(coordinator_address, num_processes, process_id, environ=None):
    """The `TF_CONFIG` cluster of a multi-process TensorFlow run.

    `MultiWorkerMirroredStrategy` reads the cluster from the `TF_CONFIG`
    environment variable. When it is not set (`environ`: `os.environ` by
    default), the processes are taken to share one host: worker `i` listens
    at `HOST:PORT+i` (`--coordinator-address HOST:PORT`), and this process
    is worker `process_id`. Across machines, set `TF_CONFIG` yourself in
    every process (`{"cluster": {"worker": [...]}, "task": {"type":
    "worker", "index": I}}`); its worker count and index must then be
    `num_processes` and `process_id` (a `ValueError` naming both otherwise).

    Example:
    ```python
    tf_config("127.0.0.1:1234", 2, 1, environ={})
    # {'cluster': {'worker': ['127.0.0.1:1234', '127.0.0.1:1235']},
    #  'task': {'type': 'worker', 'index': 1}}
    ```
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG")
    if not raw:
        host, port = coordinator_address.rsplit(":", 1)
        port = int(port)
        if port + num_processes - 1 > 65535:
            raise ValueError(
                f"`coordinator_address` (--coordinator-address {coordinator_address}): "
                f"TensorFlow's {num_processes} workers listen at ports {port}.."
                f"{port + num_processes - 1}, beyond 65535. Use a lower port."
            )
        return {
            "cluster": {"worker": [f"{host}:{port + i}" for i in range(num_processes)]},
            "task": {"type": "worker", "index": process_id},
        }
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        kind, index = task["type"], task["index"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            "The environment variable TF_CONFIG must be JSON like "
            '{"cluster": {"worker": ["host0:port", ...]}, "task": {"type": "worker", '
            '"index": I}} (or unset, for workers on one host). '
            f"Received: TF_CONFIG={raw!r} ({e})"
        ) from None
    others = sorted(set(config["cluster"]) - {"worker"})
    if others or kind != "worker":
        raise ValueError(
            "TF_CONFIG must list workers only (`--num-processes` of them); found "
            f"the task types {others or [kind]}. Received: TF_CONFIG={raw!r}"
        )
    if not isinstance(workers, list) or len(workers) != num_processes or index != process_id:
        count = len(workers) if isinstance(workers, list) else workers
        raise ValueError(
            f"TF_CONFIG disagrees with the flags: it lists {count} workers and makes "
            f"this process worker {index!r}, but `num_processes` (--num-processes) is "
            f"{num_processes} and `process_id` (--process-id) is {process_id}. "
            f"Received: TF_CONFIG={raw!r}"
        )
    return config


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
    strategy = _STATE["strategy"]
    if strategy is not None:  # TensorFlow: a one-number all-reduce.
        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
        return
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def _torch():
    import keras

    return keras.backend.backend() == "torch"


def _tf_strategy():
    """The `MultiWorkerMirroredStrategy` of several TensorFlow processes, or None."""
    return _STATE["strategy"] if process_count() > 1 else None


def scope():
    """The scope to build the model in: the `MultiWorkerMirroredStrategy`'s
    with several TensorFlow processes (its variables are mirrored over the
    processes, starting from process 0's values); no-op otherwise.

    Example:
    ```python
    with distributed.scope():
        backbone, pmlm = build_pretraining_model(1000)
    ```
    """
    strategy = _tf_strategy()
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


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
    if process_count() == 1 or _torch() or _tf_strategy() is not None:
        # PyTorch, TensorFlow: every process holds every weight.
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


def distribute(dataset):
    """What `fit`/`evaluate` read from this process' batches (`shard_batches`):
    with several TensorFlow processes a distributed dataset that hands each
    process its own batches as they are (the `MultiWorkerMirroredStrategy`
    neither shards nor rebatches them), in Keras' data adapter (Keras 3.15
    takes a bare distributed dataset for arrays); `dataset` itself
    otherwise."""
    strategy = _tf_strategy()
    if strategy is None:
        return dataset
    from keras.src.trainers.data_adapters.tf_dataset_adapter import TFDatasetAdapter

    return TFDatasetAdapter(strategy.distribute_datasets_from_function(lambda context: dataset))


def make_distribution(keras, model_parallel):
    """DataParallel over all devices, or ModelParallel on a `batch x model` mesh
    (None for several PyTorch or TensorFlow processes: see `prepare_model`).

    With several processes, `keras.distribution.list_devices()` lists every
    process' devices (process 0's first): a `BxM` mesh whose `M` divides the
    devices of one process keeps each model replica inside a process.
    """
    if process_count() > 1 and (_torch() or _tf_strategy() is not None):
        if model_parallel:
            raise ValueError(
                f"`model_parallel` (--mesh {model_parallel}) runs on JAX; on PyTorch "
                "(`torch.distributed`) and TensorFlow (`MultiWorkerMirroredStrategy`) "
                "several processes train data-parallel. "
                f"Received: model_parallel={model_parallel!r}"
            )
        return None  # Data-parallel by `prepare_model`.
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


def _global_weighted_mean(keras, name, global_sum, factor):
    """Sparse cross-entropy (from logits) as this process' part of the
    weighted mean over the global batch: `factor * sum(w * loss) / global
    sum(w)`, the global sum by `global_sum(local sum)` (an all-reduce).

    `factor` matches how the backend combines the processes' losses and
    gradients: `N` (N processes) where they are averaged (PyTorch,
    `prepare_model`), 1 where they are summed (TensorFlow's replicas);
    either way the combination is the global weighted mean and its
    gradient."""

    class GlobalWeightedMean(keras.losses.Loss):
        def __init__(self):
            super().__init__(name=name, reduction="sum")

        def call(self, y_true, y_pred):
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)

        def __call__(self, y_true, y_pred, sample_weight=None):
            if sample_weight is None:
                sample_weight = keras.ops.ones(keras.ops.shape(y_true), dtype="float32")
            total = global_sum(keras.ops.sum(keras.ops.cast(sample_weight, "float32")))
            weighted_sum = super().__call__(y_true, y_pred, sample_weight=sample_weight)
            return weighted_sum * factor / keras.ops.maximum(total, 1e-9)

    return GlobalWeightedMean()


def _torch_sum(value):
    import torch.distributed as dist

    total = value.detach().clone()
    dist.all_reduce(total)
    return total


def _tf_replica_sum(value):
    """The sum over the replicas of a tensor or a list of them (in a
    replica context; the value itself in the cross-replica context of
    Keras' symbolic build)."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return value
    return context.all_reduce("sum", tf.nest.map_structure(tf.stop_gradient, value))


def _combine_processes(pmlm, global_sum, loss_factor, combine_gradients):
    """Recompiles `pmlm` with each output's loss as this process' part of
    the global batch's weighted mean (`_global_weighted_mean(global_sum,
    loss_factor)`), and makes its optimizer combine the processes'
    gradients (`combine_gradients`: the list of present gradients -> their
    combination) before clipping, accumulation and the update."""
    import keras

    pmlm.compile(
        optimizer=pmlm.optimizer,
        loss={
            name: _global_weighted_mean(keras, f"{name}_loss", global_sum, loss_factor)
            for name in ("ae", "par")
        },
    )
    optimizer = pmlm.optimizer
    apply = optimizer.apply

    def apply_combined(grads, trainable_variables=None):
        present = [i for i, g in enumerate(grads) if g is not None]
        combined = combine_gradients([grads[i] for i in present])
        grads = list(grads)
        for i, total in zip(present, combined):
            grads[i] = total
        return apply(grads, trainable_variables)

    optimizer.apply = apply_combined


def prepare_model(pmlm, element_spec=None):
    """Makes a compiled PMLM train data-parallel over several PyTorch or
    TensorFlow processes under Keras' own `fit`/`evaluate` (no-op on one
    process or on JAX, where `keras.distribution` does it); every process
    calls it once after building the model (on TensorFlow in `scope()`).

    - The processes start from process 0's weights (PyTorch: broadcast;
      TensorFlow: the strategy's mirrored variables).
    - Each output's loss is this process' part of the *global* batch's
      weighted mean (its weighted sum over the global sum of the weights).
    - The optimizer combines the gradients of all processes (one all-reduce
      of all gradients per batch) *before* clipping, accumulation and the
      update, so these see the global batch's gradient as on one process.
    - The metrics (loss trackers, accuracies) are summed over the processes
      whenever Keras reads them, so every process logs the global figures.

    On TensorFlow (`MultiWorkerMirroredStrategy`) `element_spec` is the
    structure of this process' batches (`dataset.element_spec`): the
    model's losses, metrics and optimizer are built from it here, because
    Keras 3's own build from the first batch, and its reduction of each
    step's figures, do not work across workers (`_prepare_tf_model`).

    Example (each of 2 processes, after `initialize_processes`):
    ```python
    data = distributed.shard_batches(data, batch_size)
    with distributed.scope():
        backbone, pmlm = build_pretraining_model(vocabulary_size=1000)
    prepare_model(pmlm, data.element_spec)
    pmlm.fit(distributed.distribute(data), epochs=1)
    ```
    """
    if process_count() == 1:
        return pmlm
    if _torch():
        return _prepare_torch_model(pmlm)
    if _tf_strategy() is not None:
        return _prepare_tf_model(pmlm, element_spec)
    return pmlm


def _prepare_torch_model(pmlm):
    """`prepare_model` on PyTorch (`torch.distributed`, as
    `DistributedDataParallel`): gradients averaged over the processes."""
    import torch
    import torch.distributed as dist

    count = process_count()
    with torch.no_grad():
        for variable in pmlm.variables:
            dist.broadcast(variable.value.data, 0)
    _combine_processes(
        pmlm, _torch_sum, count, lambda grads: [t / count for t in _flat_all_reduce(grads, dist)]
    )
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


def _prepare_tf_model(pmlm, element_spec):
    """`prepare_model` on TensorFlow (`MultiWorkerMirroredStrategy`, one
    replica per process).

    Keras 3's TensorFlow `fit` fails under this strategy in two places,
    replaced here: its symbolic build reduces the first distributed batch
    with `strategy.reduce("MEAN")` (not across workers), and each step's
    figures are reduced with `strategy.reduce("MEAN", axis=0)` (scalars have
    no axis 0). So the losses, metrics and optimizer are built here from
    `element_spec`, and the train/test functions run the step in every
    replica, then read the metrics in the cross-replica context (Keras'
    metric variables are on-read sums: the read sums them over the
    workers, the global figures).

    Keras' optimizer sums the replicas' gradients, but after clipping each
    replica's own: the gradients are summed here first (then its own sum is
    an identity), so clipping sees the global gradient.
    """
    import keras

    if pmlm.preprocessor is not None:
        raise ValueError(
            "Several TensorFlow processes read batches preprocessed by the dataset; "
            "build the PMLM with `preprocessor=None`. Received: "
            f"preprocessor={pmlm.preprocessor!r}"
        )
    if element_spec is None:
        raise ValueError(
            "`element_spec` (the structure of this process' batches, "
            "`dataset.element_spec`) is needed to prepare the model for several "
            "TensorFlow processes. Received: element_spec=None"
        )
    strategy = _STATE["strategy"]
    with strategy.scope():
        _combine_processes(pmlm, _tf_replica_sum, 1, _tf_replica_sum)
        pmlm._symbolic_build(data_batch=element_spec)
    pmlm._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    optimizer = pmlm.optimizer
    for inner in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if inner is not None:
            inner._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)

    def make_function(step):
        @tf.function
        def run_step(iterator):
            strategy.run(step, args=(next(iterator),))
            return pmlm.get_metrics_result()

        return run_step

    pmlm.train_function = make_function(pmlm.train_step)
    pmlm.test_function = make_function(pmlm.test_step)
    # Keras' own `fit`/`evaluate`: keras-hub's (mapping the preprocessor
    # over the data) take `tf.data` datasets only, not the distributed ones
    # of `distribute` (the batches are preprocessed already).
    pmlm.fit = functools.partial(keras.Model.fit, pmlm)
    pmlm.evaluate = functools.partial(keras.Model.evaluate, pmlm)
    return pmlm
