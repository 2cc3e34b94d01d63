import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_utils.plotting import (
    project_2d,
    projection_scatter,
    similarity_heatmap,
    tsne_perplexity,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_heatmap_labels_rows_and_columns():
    ax = similarity_heatmap(np.eye(3), ["a", "b", "c"], title="t")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "t"


def test_heatmap_shortens_long_labels():
    ax = similarity_heatmap(np.eye(1), ["x" * 60])
    assert len(ax.get_yticklabels()[0].get_text()) == 40


def test_heatmap_label_count_mismatch():
    with pytest.raises(ValueError, match=r"matrix has shape \(2, 2\) but there are 3 row labels"):
        similarity_heatmap(np.eye(2), ["a", "b", "c"])


def test_perplexity_adapts_to_few_points():
    assert tsne_perplexity(10) == 3.0
    assert tsne_perplexity(1000) == 30.0
    with pytest.raises(ValueError, match="at least 3 points"):
        tsne_perplexity(2)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_is_deterministic(method):
    points = np.random.default_rng(0).normal(size=(12, 5))
    first = project_2d(points, method=method, seed=1)
    second = project_2d(points, method=method, seed=1)
    assert first.shape == (12, 2)
    np.testing.assert_allclose(first, second)


def test_projection_unknown_method():
    with pytest.raises(ValueError, match="Unknown projection method 'umap'. Valid methods: pca, tsne"):
        project_2d(np.ones((4, 3)), method="umap")


def test_scatter_colours_by_label():
    points = np.vstack([np.zeros((5, 4)), np.ones((5, 4))]) + np.random.default_rng(0).normal(0, 0.01, (10, 4))
    ax, projected = projection_scatter(points, ["a"] * 5 + ["b"] * 5, method="tsne")
    assert projected.shape == (10, 2)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["a", "b"]


def test_scatter_label_count_mismatch():
    with pytest.raises(ValueError, match="Got 4 embeddings but 3 labels"):
        projection_scatter(np.ones((4, 3)), ["a", "b", "c"])
