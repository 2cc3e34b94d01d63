import numpy as np
import pytest

from course_utils.fusion import choose_fusion_weight, choose_threshold, early_fusion, late_fusion
from course_utils.metrics import binary_metrics, clustering_agreement, metrics_table
from course_utils.probes import fit_probe, probe_accuracy


def test_late_fusion_weighted_average():
    fused = late_fusion([[0.2, 0.9], [0.6, 0.1]], [0.25, 0.75])
    np.testing.assert_allclose(fused, [0.25 * 0.2 + 0.75 * 0.6, 0.25 * 0.9 + 0.75 * 0.1])


def test_weights_must_sum_to_one():
    with pytest.raises(ValueError, match=r"sum to 1, got \[0.5, 0.6\] \(sum 1.1\)"):
        late_fusion([[0.1], [0.2]], [0.5, 0.6])


def test_negative_weight_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        late_fusion([[0.1], [0.2]], [1.5, -0.5])


def test_weight_count_must_match():
    with pytest.raises(ValueError, match="Got 2 modalities but 3 weights"):
        late_fusion([[0.1], [0.2]], [0.2, 0.3, 0.5])


def test_probability_outside_unit_interval_rejected():
    with pytest.raises(ValueError, match=r"probabilities\[1\] must lie in \[0, 1\], but entry 1 is 1.7"):
        late_fusion([[0.1, 0.2], [0.3, 1.7]], [0.5, 0.5])


def test_nan_probability_rejected():
    with pytest.raises(ValueError, match="must lie in"):
        late_fusion([[0.1, np.nan], [0.3, 0.4]], [0.5, 0.5])


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match=r"different lengths \[2, 3\]"):
        late_fusion([[0.1, 0.2], [0.3, 0.4, 0.5]], [0.5, 0.5])


def test_single_modality_rejected():
    with pytest.raises(ValueError, match="at least two modalities"):
        late_fusion([[0.1]], [1.0])


def test_weight_search_prefers_informative_modality():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    informative = np.clip(0.5 + 0.4 * (2 * labels - 1) + rng.normal(0, 0.1, 400), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, 400)
    weight, losses = choose_fusion_weight(informative, noise, labels)
    assert weight >= 0.8
    assert losses.shape == (21,)


def test_weight_search_single_class_rejected():
    with pytest.raises(ValueError, match=r"only the class\(es\) \[1\]"):
        choose_fusion_weight([0.2, 0.4], [0.3, 0.9], [1, 1])


@pytest.mark.parametrize("criterion", ["f1", "youden", "accuracy"])
def test_threshold_separates_clean_data(criterion):
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    threshold = choose_threshold(labels, probabilities, criterion)
    assert 0.3 < threshold <= 0.6
    assert ((probabilities >= threshold) == labels.astype(bool)).all()


def test_threshold_unknown_criterion():
    with pytest.raises(ValueError, match="Unknown criterion 'auc'. Valid criteria: f1, youden, accuracy"):
        choose_threshold([0, 1], [0.2, 0.8], "auc")


def test_threshold_length_mismatch():
    with pytest.raises(ValueError, match="Got 3 labels but 2 probabilities"):
        choose_threshold([0, 1, 1], [0.2, 0.8])


def test_early_fusion_concatenates():
    fused = early_fusion(np.ones((3, 2)), np.zeros((3, 4)))
    assert fused.shape == (3, 6)
    np.testing.assert_array_equal(fused[:, :2], 1)


def test_early_fusion_row_mismatch():
    with pytest.raises(ValueError, match=r"different numbers of rows \[3, 2\]"):
        early_fusion(np.ones((3, 2)), np.ones((2, 2)))


def test_binary_metrics_values():
    metrics = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    assert metrics["accuracy"] == 0.5
    assert metrics["f1"] == 0.5
    assert metrics["roc_auc"] == 0.75


def test_binary_metrics_single_class_rejected():
    with pytest.raises(ValueError, match="a classifier needs at least 2"):
        binary_metrics([1, 1, 1], [0.2, 0.5, 0.9])


def test_metrics_table_rows():
    table = metrics_table({"a": ([0.1, 0.9], 0.5), "b": ([0.9, 0.1], 0.5)}, [0, 1])
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "accuracy"] == 1.0
    assert table.loc["b", "roc_auc"] == 0.0


def test_metrics_table_empty_rejected():
    with pytest.raises(ValueError, match="results is empty"):
        metrics_table({}, [0, 1])


def test_probe_learns_separable_classes():
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(-2, 1, (50, 3)), rng.normal(2, 1, (50, 3))])
    labels = np.repeat([0, 1], 50)
    assert probe_accuracy(features[::2], labels[::2], features[1::2], labels[1::2]) > 0.95


def test_probe_single_class_rejected():
    with pytest.raises(ValueError, match="Use a stratified split"):
        fit_probe(np.ones((4, 2)), [3, 3, 3, 3])


def test_probe_row_mismatch_rejected():
    with pytest.raises(ValueError, match="has 4 rows but there are 3 labels"):
        fit_probe(np.ones((4, 2)), [0, 1, 0])


def test_clustering_agreement_ignores_cluster_names():
    assert clustering_agreement([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0
    with pytest.raises(ValueError, match="labels has shape"):
        clustering_agreement([0, 1], [0, 1, 1])
