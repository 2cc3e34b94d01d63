"""Plots shared by the lessons: labelled similarity heatmaps and 2-D projections.

Each function draws on a matplotlib ``Axes`` (a new one when ``ax`` is None)
and returns it, so a notebook can add titles or combine panels.
"""

import numpy as np

PROJECTIONS = ("pca", "tsne")


def similarity_heatmap(matrix, row_labels, col_labels=None, ax=None, title=None,
                       annot: bool = True, vmin: float = -1.0, vmax: float = 1.0):
    """Draw a similarity matrix as a labelled heatmap.

    Args:
        matrix: ``(n, m)`` array or tensor, e.g. from :func:`course_utils.similarity.cos_sim`.
        row_labels: ``n`` labels; long ones are shortened to 40 characters.
        col_labels: ``m`` labels; default None reuses ``row_labels``.
        ax: Axes to draw on; default None makes a new figure sized to the matrix.
        title: Optional title.
        annot: Write each value in its cell (two decimals).
        vmin, vmax: Colour scale limits; cosine similarity lies in [-1, 1].

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    values = np.asarray(matrix, dtype=float)
    col_labels = row_labels if col_labels is None else col_labels
    if values.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {values.shape}.")
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"matrix has shape {values.shape} but there are {len(row_labels)} row labels "
            f"and {len(col_labels)} column labels."
        )
    if ax is None:
        size = max(4.0, 0.55 * max(values.shape) + 2.0)
        _, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(
        values, ax=ax, vmin=vmin, vmax=vmax, cmap="RdBu_r", square=True,
        annot=annot, fmt=".2f", annot_kws={"fontsize": 7},
        xticklabels=[_shorten(label) for label in col_labels],
        yticklabels=[_shorten(label) for label in row_labels],
        cbar_kws={"shrink": 0.7, "label": "cosine similarity"},
    )
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    if title:
        ax.set_title(title)
    return ax


def _shorten(label, width: int = 40) -> str:
    text = str(label)
    return text if len(text) <= width else text[: width - 1] + "…"


def tsne_perplexity(num_points: int, preferred: float = 30.0) -> float:
    """Return a t-SNE perplexity that suits ``num_points`` points.

    Perplexity is roughly the number of neighbours each point considers, and
    scikit-learn requires it to be below the number of points. With few
    points the usual 30 is too large, so it drops to a third of them.
    """
    if num_points < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {num_points}.")
    return float(min(preferred, max(1.0, (num_points - 1) / 3)))


def project_2d(embeddings, method: str = "pca", seed: int = 0, perplexity: float | None = None):
    """Project embeddings to 2-D with scikit-learn's PCA or t-SNE.

    Args:
        embeddings: ``(n, dim)`` array or tensor.
        method: ``"pca"`` (linear, fast, keeps global distances) or ``"tsne"``
            (non-linear, keeps neighbourhoods, slower; distances between
            clusters mean little).
        seed: Random state for t-SNE (and the PCA solver), for reproducible plots.
        perplexity: t-SNE only; default None picks :func:`tsne_perplexity`.

    Returns:
        ``(n, 2)`` NumPy array.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    points = np.asarray(embeddings, dtype=np.float32)
    if points.ndim != 2 or points.shape[0] < 3:
        raise ValueError(f"embeddings must have shape (n >= 3, dim), got {points.shape}.")
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(points)
    if method == "tsne":
        perplexity = tsne_perplexity(len(points)) if perplexity is None else perplexity
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        return tsne.fit_transform(points)
    raise ValueError(f"Unknown projection method {method!r}. Valid methods: {', '.join(PROJECTIONS)}.")


def projection_scatter(embeddings, labels, method: str = "pca", seed: int = 0,
                       perplexity: float | None = None, ax=None, title=None, annotations=None):
    """Scatter a 2-D projection of ``embeddings`` coloured by ``labels``.

    Args:
        embeddings: ``(n, dim)`` array or tensor.
        labels: ``n`` labels (strings or ints) used for colour and legend.
        method, seed, perplexity: As in :func:`project_2d`.
        ax: Axes to draw on; default None makes a new one.
        title: Default names the method.
        annotations: Optional ``n`` short texts written next to the points.

    Returns:
        ``(ax, points)``: the Axes and the ``(n, 2)`` projected points.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    labels = [str(label) for label in labels]
    if len(labels) != len(embeddings):
        raise ValueError(f"Got {len(embeddings)} embeddings but {len(labels)} labels.")
    points = project_2d(embeddings, method=method, seed=seed, perplexity=perplexity)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5))
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=labels, hue_order=sorted(set(labels)),
                    ax=ax, s=40, palette="tab10")
    if annotations is not None:
        for (x, y), text in zip(points, annotations, strict=True):
            ax.annotate(_shorten(text, 24), (x, y), fontsize=7, alpha=0.8,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_title(title or {"pca": "PCA", "tsne": "t-SNE"}[method] + " projection")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="best", frameon=True)
    return ax, points
