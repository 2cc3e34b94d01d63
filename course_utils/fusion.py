"""Late and early fusion of two modalities for a binary decision.

Late fusion combines each modality's predicted probability with a weighted
average, ``p = w * p_a + (1 - w) * p_b``; early fusion concatenates the
embeddings and trains one classifier. Taught in
``notebooks/session1/04_late_fusion.ipynb``.
"""

from collections.abc import Sequence

import numpy as np

THRESHOLD_CRITERIA = ("f1", "youden", "accuracy")


def check_probabilities(probabilities, name: str = "probabilities") -> np.ndarray:
    """Return ``probabilities`` as a 1-D float array, or raise if any lies outside [0, 1]."""
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {values.shape}.")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > 1))
    if len(bad):
        raise ValueError(
            f"{name} must lie in [0, 1], but entry {bad[0]} is {float(values[bad[0]])!r} "
            f"({len(bad)} invalid in all). Pass predict_proba(...)[:, 1], not scores or logits."
        )
    return values


def late_fusion(probabilities: Sequence, weights: Sequence[float]) -> np.ndarray:
    """Fuse per-modality probabilities with a weighted average.

    Args:
        probabilities: One 1-D array of P(class 1) per modality, all the same length.
        weights: One non-negative weight per modality, summing to 1.

    Returns:
        ``(n,)`` fused probabilities, ``sum_m weights[m] * probabilities[m]``.

    Raises:
        ValueError: a probability outside [0, 1], mismatched lengths, or
            weights that are negative, miscounted or do not sum to 1.
    """
    arrays = [check_probabilities(p, f"probabilities[{i}]") for i, p in enumerate(probabilities)]
    weights = np.asarray(weights, dtype=np.float64)
    if len(arrays) < 2:
        raise ValueError(f"late_fusion needs at least two modalities, got {len(arrays)}.")
    if weights.shape != (len(arrays),):
        raise ValueError(f"Got {len(arrays)} modalities but {weights.size} weights; give one each.")
    if (weights < 0).any() or not np.isclose(weights.sum(), 1.0, atol=1e-6):
        raise ValueError(
            f"weights must be non-negative and sum to 1, got {weights.tolist()} "
            f"(sum {weights.sum():.4g}). Divide them by their sum."
        )
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(
            f"The modalities have different lengths {[len(a) for a in arrays]}; each must score the same items."
        )
    return np.sum([w * a for w, a in zip(weights, arrays, strict=True)], axis=0)


def choose_fusion_weight(probabilities_a, probabilities_b, labels, grid=None) -> tuple[float, np.ndarray]:
    """Pick the weight of modality A that minimises log loss on a validation split.

    Log loss rewards calibrated probabilities, not only correct ranks, so it
    suits a weight that averages probabilities. Ties go to the weight nearest 0.5.

    Args:
        probabilities_a, probabilities_b: Validation P(class 1) from each modality.
        labels: Validation labels, 0/1, both classes present.
        grid: Candidate weights in [0, 1]; default 0, 0.05, ..., 1.

    Returns:
        ``(best_weight, losses)``: the weight and the log loss at each grid point.
    """
    from sklearn.metrics import log_loss

    from course_utils.probes import check_labels

    labels = check_labels(labels)
    grid = np.linspace(0.0, 1.0, 21) if grid is None else np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or len(grid) == 0 or (grid < 0).any() or (grid > 1).any():
        raise ValueError(f"grid must be a non-empty 1-D sequence of weights in [0, 1], got {grid!r}.")
    losses = np.array([
        log_loss(labels, late_fusion([probabilities_a, probabilities_b], [w, 1 - w]), labels=[0, 1])
        for w in grid
    ])
    best = np.flatnonzero(np.isclose(losses, losses.min(), rtol=0, atol=1e-12))
    return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]]), losses


def choose_threshold(labels, probabilities, criterion: str = "f1") -> float:
    """Choose a decision threshold on validation data.

    Args:
        labels: 0/1 labels, both classes present.
        probabilities: P(class 1) for the same items.
        criterion: ``"f1"`` (best F1, for when positives matter most),
            ``"youden"`` (maximise true-positive minus false-positive rate,
            balanced errors) or ``"accuracy"``.

    Returns:
        The threshold t; predict class 1 when ``p >= t``.
    """
    from sklearn.metrics import roc_curve

    from course_utils.probes import check_labels

    labels = check_labels(labels)
    probabilities = check_probabilities(probabilities)
    if len(labels) != len(probabilities):
        raise ValueError(f"Got {len(labels)} labels but {len(probabilities)} probabilities.")
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"Unknown criterion {criterion!r}. Valid criteria: {', '.join(THRESHOLD_CRITERIA)}.")
    if criterion == "youden":
        false_positive_rate, true_positive_rate, thresholds = roc_curve(labels, probabilities)
        best = np.argmax(true_positive_rate - false_positive_rate)
        return float(min(thresholds[best], 1.0))
    candidates = np.unique(probabilities)
    scores = [_threshold_score(labels, probabilities >= t, criterion) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def _threshold_score(labels, predictions, criterion: str) -> float:
    from sklearn.metrics import accuracy_score, f1_score

    if criterion == "f1":
        return f1_score(labels, predictions, zero_division=0)
    return accuracy_score(labels, predictions)


def early_fusion(*feature_blocks) -> np.ndarray:
    """Concatenate per-modality embeddings into one feature matrix.

    Args:
        feature_blocks: Two or more ``(n, d_m)`` arrays with the same ``n``.

    Returns:
        ``(n, sum_m d_m)`` array. Standardise it (as :func:`course_utils.probes.fit_probe`
        does) so that no modality dominates through its scale.
    """
    from course_utils.probes import check_features

    blocks = [check_features(block, name=f"feature_blocks[{i}]") for i, block in enumerate(feature_blocks)]
    if len(blocks) < 2:
        raise ValueError(f"early_fusion needs at least two feature blocks, got {len(blocks)}.")
    rows = [b.shape[0] for b in blocks]
    if len(set(rows)) != 1:
        raise ValueError(f"The feature blocks have different numbers of rows {rows}; each row must be one item.")
    return np.hstack(blocks)
