"""GLUE metrics in NumPy: accuracy, F1, Matthews correlation, Pearson and
Spearman correlations."""

import numpy as np


def _pair(predictions, labels, dtype=None):
    predictions = np.asarray(predictions, dtype=dtype)
    labels = np.asarray(labels, dtype=dtype)
    if predictions.ndim != 1 or predictions.shape != labels.shape:
        raise ValueError(
            "`predictions` and `labels` must be 1-D and equally long. Received: "
            f"predictions.shape={predictions.shape}, labels.shape={labels.shape}"
        )
    if predictions.size == 0:
        raise ValueError("`predictions` is empty: nothing to score.")
    return predictions, labels


def accuracy(predictions, labels):
    """Fraction of `predictions` equal to `labels`."""
    predictions, labels = _pair(predictions, labels)
    return float(np.mean(predictions == labels))


def f1(predictions, labels, positive=1):
    """Binary F1 of the `positive` class (0 when it is never predicted
    nor present)."""
    predictions, labels = _pair(predictions, labels)
    tp = np.sum((predictions == positive) & (labels == positive))
    fp = np.sum((predictions == positive) & (labels != positive))
    fn = np.sum((predictions != positive) & (labels == positive))
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def matthews_corrcoef(predictions, labels):
    """Matthews correlation coefficient (multi-class form; 0 when undefined)."""
    predictions, labels = _pair(predictions, labels)
    classes, inverse = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    n = labels.size
    confusion = np.zeros((classes.size, classes.size), dtype="float64")
    np.add.at(confusion, (inverse[:n], inverse[n:]), 1.0)
    true_counts = confusion.sum(axis=1)
    predicted_counts = confusion.sum(axis=0)
    correct = np.trace(confusion)
    total = confusion.sum()
    covariance = correct * total - true_counts @ predicted_counts
    denominator = np.sqrt(
        (total**2 - predicted_counts @ predicted_counts) * (total**2 - true_counts @ true_counts)
    )
    return float(covariance / denominator) if denominator else 0.0


def pearson(predictions, labels):
    """Pearson correlation of two float series."""
    x, y = _pair(predictions, labels, dtype="float64")
    x = x - x.mean()
    y = y - y.mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    if denominator == 0:
        raise ValueError("Pearson correlation is undefined for a constant series.")
    return float(np.sum(x * y) / denominator)


def _ranks(x):
    """1-based ranks, ties getting their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(x.size, dtype="float64")
    start = 0
    while start < x.size:
        end = start
        while end + 1 < x.size and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(predictions, labels):
    """Spearman rank correlation (Pearson of the tie-averaged ranks)."""
    x, y = _pair(predictions, labels, dtype="float64")
    return pearson(_ranks(x), _ranks(y))


_METRICS = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews_corrcoef": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def glue_metrics(task, predictions, labels):
    """The metrics GLUE reports for `task`.

    Args:
        task: a GLUE task name or `keras_unilmv2.datasets.GlueTask`: CoLA
            gives `matthews_corrcoef`; SST-2, MNLI(-mm), QNLI, RTE, WNLI
            `accuracy`; MRPC and QQP `accuracy` and `f1`; STS-B `pearson`
            and `spearman`.
        predictions: class ids (scores for STS-B), e.g. the argmax of
            `UniLMv2TextClassifier.predict`.
        labels: the gold class ids (scores for STS-B).

    Returns:
        A dict, metric name -> float (fractions, not percent).

    Example:
    ```python
    glue_metrics("mrpc", [1, 0, 1, 1], [1, 0, 0, 1])
    # {"accuracy": 0.75, "f1": 0.8}
    ```
    """
    from keras_unilmv2.datasets.glue import get_glue_task

    spec = get_glue_task(task)
    return {name: _METRICS[name](predictions, labels) for name in spec.metrics}
