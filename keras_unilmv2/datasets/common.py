"""Shared helpers of the dataset readers."""

import tensorflow as tf


def dataset_from_columns(x, y=None, label_dtype="int32"):
    """`tf.data.Dataset.from_tensor_slices` of string columns (and labels),
    typed even when a column is empty."""

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
