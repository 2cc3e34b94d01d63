"""Plots shared by the lessons: image panels and grids, similarity heatmaps and 2-D projections.

The heatmap and projection functions draw on a matplotlib ``Axes`` (a new one when
``ax`` is None) and return it, so a notebook can add titles or combine panels.
:func:`show_images` and :func:`show_grid` make a whole ``Figure`` of image panels.
"""

import math
import textwrap

import numpy as np

from course_utils._validation import check_columns

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


def _as_pictures(images) -> list:
    """Return each image as an array that ``imshow`` accepts, or raise naming the first bad shape."""
    pictures = [np.asarray(image) for image in images]
    for index, picture in enumerate(pictures):
        if not (picture.ndim == 2 or (picture.ndim == 3 and picture.shape[-1] in (3, 4))):
            raise ValueError(f"Image {index} has shape {picture.shape}; pass PIL images or arrays of shape (H, W), "
                             f"(H, W, 3) or (H, W, 4). Move channels last with array.transpose(1, 2, 0).")
    return pictures


def show_images(images, titles=None, columns: int | None = None, size: float = 2.2, suptitle=None):
    """Show images side by side with matplotlib, each with an optional title.

    Args:
        images: Non-empty list of PIL images or arrays of shape ``(H, W)``, ``(H, W, 3)``
            or ``(H, W, 4)``.
        titles: Optional list of the same length; a bare string is rejected.
        columns: Images per row, at least 1; default None puts all in one row, up to 8.
        size: Inches per panel.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    images = list(images)
    if not images:
        raise ValueError("images is empty: pass at least one image.")
    if isinstance(titles, str):
        raise TypeError(f"titles is the string {titles!r}; pass a list with one title per image, "
                        f"such as [{titles!r}].")
    if titles is not None:
        titles = list(titles)
        if len(titles) != len(images):
            raise ValueError(f"Got {len(images)} images but {len(titles)} titles.")
    check_columns(columns)
    pictures = _as_pictures(images)
    if columns is None:
        columns = min(len(images), 8)
    rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.3), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(pictures):
            picture = pictures[index]
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=255 if picture.dtype == np.uint8 else None)
            if titles is not None:
                ax.set_title(str(titles[index]), fontsize=8)
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return figure


#: Font size (points) of :func:`show_grid`'s row and column labels.
_LABEL_FONT_SIZE = 9


def _label_width(panel_inches: float, font_size: float) -> int:
    """Return how many characters of a label fit across one panel of ``panel_inches``."""
    # An average character of matplotlib's default font is about 0.6 em wide (an estimate),
    # and an inch is 72 points.
    return max(8, int(panel_inches * 72 / (0.6 * font_size)))


def show_grid(images, row_labels, column_labels, size: float = 1.8):
    """Show a labelled comparison grid: one row per ``row_labels`` entry, one column per ``column_labels`` entry.

    Args:
        images: PIL images or arrays in row order, ``len(row_labels) * len(column_labels)`` of them.
        row_labels: What changes down the grid (for example the masks), written left of each row.
        column_labels: What changes across it (for example the prompts), written above each column.
        size: Inches per panel. Labels longer than a panel is wide wrap onto more lines.

    Pixel values are read as :func:`show_images` reads them: uint8 on the 0-255 scale, floats
    from 0 to their own maximum. So a uint8 mask of 0 and 1 looks black; multiply it by 255.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    for name, labels in (("row_labels", row_labels), ("column_labels", column_labels)):
        if isinstance(labels, str):
            raise TypeError(f"{name} is the string {labels!r}; pass a list of labels, such as [{labels!r}].")
    images, row_labels, column_labels = list(images), list(row_labels), list(column_labels)
    if not row_labels or not column_labels:
        empty = "row_labels" if not row_labels else "column_labels"
        raise ValueError(f"{empty} is empty: name at least one row and one column.")
    expected = len(row_labels) * len(column_labels)
    if len(images) != expected:
        raise ValueError(f"Got {len(images)} images for {len(row_labels)} rows x {len(column_labels)} columns; "
                         f"pass {expected} images in row order.")
    pictures = _as_pictures(images)
    figure, axes = plt.subplots(len(row_labels), len(column_labels), squeeze=False,
                                figsize=(size * len(column_labels) + 0.8, size * len(row_labels) + 0.3))
    for picture, ax in zip(pictures, axes.flat, strict=True):
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0,
                  vmax=255 if picture.dtype == np.uint8 else None)
        # Ticks hidden, axis kept on so that the row label (a y-label) stays visible. A light
        # frame keeps an all-white panel from vanishing into the page.
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("lightgray")
    # A label wider than its panel would run into the next one, so long prompts wrap onto
    # more lines. tight_layout then makes room for them.
    width = _label_width(size, _LABEL_FONT_SIZE)
    for ax, label in zip(axes[0], column_labels, strict=True):
        ax.set_title(textwrap.fill(str(label), width), fontsize=_LABEL_FONT_SIZE)
    for ax, label in zip(axes[:, 0], row_labels, strict=True):
        ax.set_ylabel(textwrap.fill(str(label), width), fontsize=_LABEL_FONT_SIZE)
    figure.tight_layout()
    return figure
