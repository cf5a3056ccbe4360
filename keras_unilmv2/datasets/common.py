"""Shared helpers of the dataset readers."""


def tf_module():
    try:
        import tensorflow as tf
    except ImportError as e:  # pragma: no cover - depends on the env
        raise ImportError(
            "The keras_unilmv2.datasets readers build `tf.data` datasets: "
            "`pip install tensorflow`."
        ) from e
    return tf


def dataset_from_columns(x, y=None, label_dtype="int32"):
    """`tf.data.Dataset.from_tensor_slices` of string columns (and labels),
    typed even when a column is empty."""
    tf = tf_module()

    def strings(values):
        return tf.constant(list(values), dtype=tf.string, shape=[len(values)])

    if isinstance(x, dict):
        x = {key: strings(column) for key, column in x.items()}
    elif isinstance(x, tuple):
        x = tuple(strings(column) for column in x)
    else:
        x = strings(x)
    if y is None:
        return tf.data.Dataset.from_tensor_slices(x)
    y = tf.constant(list(y), dtype=label_dtype, shape=[len(y)])
    return tf.data.Dataset.from_tensor_slices((x, y))
