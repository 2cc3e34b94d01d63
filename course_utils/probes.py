"""Linear probes: how much of a label a frozen embedding exposes to a linear classifier.

A probe is a standardised logistic regression fitted on embeddings. Its test
accuracy measures the embedding, not the classifier, because the classifier
is kept simple. Used by the image, audio and late-fusion lessons.
"""

import numpy as np


def check_labels(labels, name: str = "labels", min_classes: int = 2) -> np.ndarray:
    """Return ``labels`` as a 1-D array, or raise if it has fewer than ``min_classes`` classes."""
    values = np.asarray(labels)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {values.shape}.")
    classes = np.unique(values)
    if len(classes) < min_classes:
        raise ValueError(
            f"{name} contains only the class(es) {classes.tolist()}; a classifier needs at least "
            f"{min_classes}. Use a stratified split so every class appears."
        )
    return values


def check_features(features, labels=None, name: str = "features") -> np.ndarray:
    """Return ``features`` as a 2-D float array, checking its rows against ``labels``."""
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, dimensions), got shape {matrix.shape}.")
    if labels is not None and len(labels) != matrix.shape[0]:
        raise ValueError(
            f"{name} has {matrix.shape[0]} rows but there are {len(labels)} labels; they must match."
        )
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return matrix


def fit_probe(features, labels, C: float = 1.0, seed: int = 0):
    """Fit a standardised logistic-regression probe.

    Args:
        features: ``(n, dim)`` embeddings.
        labels: ``n`` class labels, at least two distinct.
        C: Inverse regularisation strength; smaller means a simpler boundary.
        seed: Random state of the solver.

    Returns:
        A fitted scikit-learn ``Pipeline`` (``StandardScaler`` then
        ``LogisticRegression``) with ``predict`` and ``predict_proba``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = check_labels(labels)
    features = check_features(features, labels)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
    return probe.fit(features, labels)


def probe_accuracy(train_features, train_labels, test_features, test_labels, C: float = 1.0,
                   seed: int = 0) -> float:
    """Fit a probe on the training split and return its accuracy on the test split (0-1)."""
    probe = fit_probe(train_features, train_labels, C=C, seed=seed)
    test_labels = np.asarray(test_labels)
    test_features = check_features(test_features, test_labels, "test_features")
    return float((probe.predict(test_features) == test_labels).mean())
