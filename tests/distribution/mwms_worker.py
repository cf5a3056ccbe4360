"""One worker of the TensorFlow multi-worker check of
`test_multiprocess_pretraining.py`:

    python tests/distribution/mwms_worker.py RANK WORLD PORT OUT.json

A custom training step under `tf.distribute.MultiWorkerMirroredStrategy`
(`tools/pretrain_pmlm.py` uses Keras' own `fit` with the workarounds of
`keras_unilmv2.pretraining.distributed.prepare_model`), as in Keras'
"Custom training loop with TensorFlow" with a strategy: `WORLD` workers (`TF_CONFIG`, ports `PORT..PORT+WORLD-1` on
127.0.0.1; WORLD=1: no strategy) build the tiny PMLM
(`dist_worker._build("pmlm")`: seed 0, dropout 0) in the strategy's scope
and take `dist_worker.STEPS` SGD(0.1) steps with `strategy.run`, each
worker on its `BATCH / WORLD` rows of the global batch of
`dist_worker.BATCH`.

The loss is the PMLM's (per output, the weighted mean cross-entropy over
the *global* batch): each worker divides its weighted sum by the global
weight total (a replica-context all-reduce); Keras' TensorFlow optimizer
sums the gradients over the replicas in `apply_gradients`, which makes
them the global batch's. Rank 0 alone writes OUT.json: the per-step
global losses and the final weights.
"""

import json
import os
import sys

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))


def main(rank, world, port, out):
    if world > 1:  # Before TensorFlow starts.
        os.environ["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": [f"127.0.0.1:{port + i}" for i in range(world)]},
                "task": {"type": "worker", "index": rank},
            }
        )
    import keras
    import numpy as np
    import tensorflow as tf

    import dist_worker

    if world > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    x, y, weights = keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t)), dist_worker._pmlm_data()
    )
    share = dist_worker.BATCH // world
    rows = slice(rank * share, (rank + 1) * share)
    x, y, weights = (
        {k: tf.constant(v[rows]) for k, v in part.items()} for part in (x, y, weights)
    )
    with strategy.scope():
        model = dist_worker._build("pmlm")
        model(x)  # built
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)

    def step(x, y, weights):
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            loss = 0.0
            for name in ("ae", "par"):
                total = context.all_reduce("sum", tf.reduce_sum(weights[name]))
                token = keras.losses.sparse_categorical_crossentropy(
                    y[name], tf.cast(outputs[name], "float32"), from_logits=True
                )
                loss += tf.reduce_sum(token * weights[name]) / total
        gradients = tape.gradient(loss, model.trainable_variables)
        # Summed over the replicas by Keras' TensorFlow optimizer.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return context.all_reduce("sum", loss)

    @tf.function
    def train(x, y, weights):
        return strategy.run(step, args=(x, y, weights))

    losses = []
    for _ in range(dist_worker.STEPS):
        result = train(x, y, weights)
        losses.append(float(strategy.experimental_local_results(result)[0]))
    if rank == 0:
        result = {
            "losses": losses,
            "weights": {w.path: np.asarray(keras.ops.convert_to_numpy(w)).tolist()
                        for w in model.weights},
        }
        with open(out, "w") as f:
            json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
