"""The alignment-uniformity plane (one point per encoder, coloured by group) and the cached t-SNE map."""
import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgba

from sslbook import plots


def test_grouped_points_take_their_group_colour_and_the_legend_lists_the_groups_shown_in_order():
    points = {"simclr": (0.3, -1.3), "byol": (0.2, -0.9), "mae": (0.5, -0.6)}
    groups = {"simclr": "contrastive", "byol": "contrastive", "mae": "generative", "dae": "generative"}
    colours = {"pretext tasks": "tab:orange", "generative": "tab:green", "contrastive": "tab:blue"}
    _, axis = plt.subplots()
    plots.alignment_uniformity_plane(points, axis, groups=groups, group_colours=colours)
    drawn = [collection for collection in axis.collections if len(collection.get_offsets())]
    assert [tuple(c.get_offsets()[0]) for c in drawn] == [(-1.3, 0.3), (-0.9, 0.2), (-0.6, 0.5)]
    assert [tuple(c.get_facecolor()[0]) for c in drawn] == [to_rgba("tab:blue")] * 2 + [to_rgba("tab:green")]
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["generative", "contrastive"]
    assert [text.get_text() for text in axis.texts] == ["simclr", "byol", "mae"]
    plt.close("all")


def test_without_groups_there_is_no_legend():
    _, axis = plt.subplots()
    plots.alignment_uniformity_plane({"random init": (0.1, -0.3)}, axis)
    assert axis.get_legend() is None and [text.get_text() for text in axis.texts] == ["random init"]
    plt.close("all")


def test_more_points_than_can_be_named_are_numbered_and_keyed_beside_the_plane():
    points = {f"method {index}": (0.1 * index, -index / 10) for index in range(plots.NAMED_POINTS + 1)}
    _, axis = plt.subplots()
    plots.alignment_uniformity_plane(points, axis)
    *labels, key = [text.get_text() for text in axis.texts]
    assert labels == [str(number) for number in range(1, len(points) + 1)]
    assert key.splitlines() == [f"{number:>2}  {name}" for number, name in enumerate(points, start=1)]
    plt.close("all")


def test_the_tsne_legend_sits_under_the_map(monkeypatch, tmp_path):
    import torch

    monkeypatch.setenv("SSLBOOK_CHECKPOINTS", str(tmp_path))
    features, labels = torch.randn(60, 8, generator=torch.Generator().manual_seed(0)), torch.arange(60) % 3
    axis = plots.embedding_plot(features, labels, ["cat", "dog", "ship"])
    legend = axis.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["cat", "dog", "ship"]
    assert legend.get_bbox_to_anchor().y0 < axis.get_window_extent().y0  # below the axes
    plt.close("all")


def test_tsne_map_is_computed_once_per_set_of_points(tmp_path, monkeypatch):
    import numpy as np
    import sklearn.manifold

    monkeypatch.setenv("SSLBOOK_CHECKPOINTS", str(tmp_path))
    points = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    first = plots.tsne_map(points, seed=0)
    assert first.shape == (60, 2) and len(list(tmp_path.glob("tsne-*.npy"))) == 1
    fresh = sklearn.manifold.TSNE(n_components=2, init="pca", perplexity=30, max_iter=500,
                                   random_state=0).fit_transform(points)
    np.testing.assert_allclose(first, fresh)

    class NotCalled:
        def __init__(self, *args, **kwargs):
            raise AssertionError("the saved map should have been read")

    monkeypatch.setattr(sklearn.manifold, "TSNE", NotCalled)
    np.testing.assert_array_equal(plots.tsne_map(points, seed=0), first)
    with pytest.raises(AssertionError, match="saved map"):
        plots.tsne_map(points[:50], seed=0)  # other points: computed afresh
