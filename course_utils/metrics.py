"""Classification metrics and comparison tables for binary decisions."""

import numpy as np


def binary_metrics(labels, probabilities, threshold: float = 0.5) -> dict:
    """Return accuracy, F1 (at ``threshold``) and ROC AUC (threshold-free) of binary predictions.

    Args:
        labels: 0/1 labels with both classes present (ROC AUC is undefined otherwise).
        probabilities: P(class 1), in [0, 1], for the same items.
        threshold: Predict 1 when ``p >= threshold``.
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from course_utils.fusion import check_probabilities
    from course_utils.probes import check_labels

    labels = check_labels(labels)
    probabilities = check_probabilities(probabilities)
    if len(labels) != len(probabilities):
        raise ValueError(f"Got {len(labels)} labels but {len(probabilities)} probabilities.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}.")
    predictions = (probabilities >= threshold).astype(int)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1_score(labels, predictions, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, probabilities)),
    }


def metrics_table(results: dict, labels) -> "object":
    """Tabulate :func:`binary_metrics` for several systems on the same labels.

    Args:
        results: ``{name: (probabilities, threshold)}``, one entry per system.
        labels: The shared 0/1 labels.

    Returns:
        ``pandas.DataFrame`` indexed by system name, with columns ``accuracy``,
        ``f1``, ``roc_auc`` and ``threshold``.
    """
    import pandas as pd

    if not results:
        raise ValueError("results is empty: pass at least one {name: (probabilities, threshold)} entry.")
    rows = {}
    for name, (probabilities, threshold) in results.items():
        rows[name] = {**binary_metrics(labels, probabilities, threshold), "threshold": threshold}
    return pd.DataFrame.from_dict(rows, orient="index")


def clustering_agreement(labels, clusters) -> float:
    """Return the adjusted Rand index between true labels and cluster ids (1 = identical, ~0 = chance)."""
    from sklearn.metrics import adjusted_rand_score

    labels, clusters = np.asarray(labels), np.asarray(clusters)
    if labels.shape != clusters.shape:
        raise ValueError(f"labels has shape {labels.shape} but clusters has {clusters.shape}.")
    return float(adjusted_rand_score(labels, clusters))
