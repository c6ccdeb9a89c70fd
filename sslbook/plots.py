"""The book's figures: view grids, embeddings, the alignment-uniformity plane, curves, heat maps."""
from __future__ import annotations

import hashlib

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from .paths import checkpoints_dir, write_atomically


def as_image(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 or float in [0, 1] -> (H, W, 3) float array for imshow."""
    image = image.detach().cpu()
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    return image.permute(1, 2, 0).clamp(0, 1).numpy()


def image_grid(rows: list[torch.Tensor], row_titles: list[str] | None = None, column_titles=None,
               size: float = 1.1, title: str | None = None):
    """Show several batches of images, one batch per row."""
    n_rows, n_cols = len(rows), max(len(row) for row in rows)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            axis = axes[r, c]
            axis.set_xticks([]), axis.set_yticks([])
            if c < len(row):
                axis.imshow(as_image(row[c]), interpolation="nearest")
            else:
                axis.axis("off")
        if row_titles:
            axes[r, 0].set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=9)
    if column_titles:
        for c, text in enumerate(column_titles):
            axes[0, c].set_title(text, fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def view_grid(images: torch.Tensor, views: list[torch.Tensor], n_images: int = 8):
    """The originals in the first row, then one row per augmented view."""
    rows = [images[:n_images]] + [view[:n_images] for view in views]
    titles = ["original"] + [f"view {i + 1}" for i in range(len(views))]
    return image_grid(rows, titles)


def tsne_map(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE coordinates of ``points`` (perplexity 30, PCA initialisation; van der Maaten and Hinton 2008),
    with 500 iterations instead of scikit-learn's 1000: half the time, for a map that is only looked at.

    Kept beside the checkpoints under a digest of the points, so the same features (the random-init
    encoder of every chapter that shares an architecture) are mapped once.
    """
    from sklearn.manifold import TSNE

    points = np.ascontiguousarray(points, dtype=np.float32)
    settings = dict(n_components=2, init="pca", perplexity=30, max_iter=500, random_state=seed)
    # the settings are in the digest: a map saved with others (scikit-learn's 1000 iterations) is not reused
    digest = hashlib.sha256(points.tobytes() + repr((points.shape, sorted(settings.items()))).encode()).hexdigest()[:16]
    path = checkpoints_dir() / f"tsne-{digest}.npy"
    if path.exists():
        return np.load(path)
    embedded = TSNE(**settings).fit_transform(points)

    def save(temporary):
        with temporary.open("wb") as file:
            np.save(file, embedded)

    write_atomically(path, save)
    return embedded


def embedding_plot(features: torch.Tensor, labels: torch.Tensor, class_names: list[str], title: str = "",
                   n_points: int = 1000, seed: int = 0, axis=None):
    """A 2-D t-SNE map of the features, coloured by class."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(features), generator=generator)[:n_points]
    points = F.normalize(features[chosen].float(), dim=1).numpy()
    embedded = tsne_map(points, seed)
    if axis is None:
        _, axis = plt.subplots(figsize=(5, 5))
    colours = plt.get_cmap("tab10")
    chosen_labels = labels[chosen].numpy()
    for label, name in enumerate(class_names):
        member = chosen_labels == label
        axis.scatter(embedded[member, 0], embedded[member, 1], s=10, color=colours(label % 10), label=name)
    axis.set_xticks([]), axis.set_yticks([])
    axis.set_title(title)
    # under the map, not over its points
    axis.legend(markerscale=2, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.02),
                ncol=min(5, len(class_names)), frameon=False, handletextpad=0.1, columnspacing=0.8)
    return axis


NAMED_POINTS = 8  # more points than this are numbered on the plane


def alignment_uniformity_plane(points: dict[str, tuple[float, float]], axis=None, title: str = "",
                               groups: dict[str, str] | None = None, group_colours: dict[str, str] | None = None):
    """Each encoder as a point (L_uniform, L_align): lower-left is better on both.

    points: name -> (alignment, uniformity). groups: optional name -> group (a family of methods);
    the points of a group share its colour from ``group_colours`` and the legend names the groups.
    Up to ``NAMED_POINTS`` points carry their names; more carry numbers, keyed beside the plane, so
    that the names do not overlap.
    """
    if axis is None:
        _, axis = plt.subplots(figsize=(5, 4))
    numbered = len(points) > NAMED_POINTS
    for number, (name, (alignment, uniformity)) in enumerate(points.items(), start=1):
        colour = group_colours[groups[name]] if groups is not None else None
        axis.scatter(uniformity, alignment, s=40, color=colour)
        axis.annotate(str(number) if numbered else name, (uniformity, alignment), textcoords="offset points",
                      xytext=(4, 3), fontsize=10)
    if numbered:
        axis.text(1.02, 1.0, "\n".join(f"{number:>2}  {name}" for number, name in enumerate(points, start=1)),
                  transform=axis.transAxes, va="top", fontsize=10, family="monospace")
    if groups is not None:
        shown = {groups[name] for name in points}
        for group in (group for group in group_colours if group in shown):  # in group_colours' order
            axis.scatter([], [], color=group_colours[group], label=group)
        axis.legend(fontsize=10)
    axis.set_xlabel(r"$\mathcal{L}_{uniform}$ (lower: more uniform)")
    axis.set_ylabel(r"$\mathcal{L}_{align}$ (lower: positives closer)")
    axis.set_title(title or "Alignment and uniformity")
    axis.grid(alpha=0.3)
    return axis


def training_curves(history, metric_keys: tuple[str, ...] = ("knn",), axes=None):
    """The loss per step, and per-epoch metrics when the history has them."""
    metrics = [key for key in metric_keys if history.epochs and key in history.epochs[0]]
    if axes is None:
        _, axes = plt.subplots(1, 1 + len(metrics), figsize=(4.5 * (1 + len(metrics)), 3.2), squeeze=False)
        axes = axes[0]
    losses = np.array(history.losses())
    axes[0].plot(losses, alpha=0.3, label="per step")
    window = max(1, len(losses) // 30)
    if len(losses) >= window:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        axes[0].plot(np.arange(window - 1, len(losses)), smooth, label=f"mean of {window}")
    axes[0].set_xlabel("step"), axes[0].set_ylabel("loss"), axes[0].legend()
    for axis, key in zip(axes[1:], metrics):
        axis.plot([e["epoch"] + 1 for e in history.epochs], [e[key] for e in history.epochs], marker="o")
        axis.set_xlabel("epoch"), axis.set_ylabel(key)
    plt.tight_layout()
    return axes


def label_efficiency_plot(curves: dict[str, dict[int, list[float]]], axis=None, title: str = ""):
    """Test accuracy against labelled images per class (log scale), one line per encoder: the mean
    over the draws of the labelled images, with bars from the lowest to the highest draw."""
    if axis is None:
        _, axis = plt.subplots(figsize=(6.5, 4))
    for (name, curve), marker in zip(curves.items(), "osD^v"):
        counts = sorted(curve)
        means = np.array([np.mean(curve[n]) for n in counts])
        low = means - np.array([min(curve[n]) for n in counts])
        high = np.array([max(curve[n]) for n in counts]) - means
        axis.errorbar(counts, means, yerr=[low, high], marker=marker, capsize=3, label=name)
    axis.set_xscale("log")
    axis.set_xticks(sorted({n for curve in curves.values() for n in curve}))
    axis.get_xaxis().set_major_formatter(plt.ScalarFormatter())
    axis.set_xlabel("labelled training images per class (log scale)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(title)
    axis.legend()
    return axis


def similarity_heatmap(matrix: torch.Tensor, title: str = "", axis=None, labels: list[str] | None = None,
                       vmin: float | None = None, vmax: float | None = None, colorbar: bool = True):
    """A heat map of a similarity or correlation matrix."""
    if axis is None:
        _, axis = plt.subplots(figsize=(4.5, 4))
    image = axis.imshow(matrix.detach().cpu().float().numpy(), cmap="coolwarm", vmin=vmin, vmax=vmax)
    if labels is not None:
        axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.set_title(title)
    if colorbar:
        plt.colorbar(image, ax=axis, fraction=0.046)
    return axis


def retrieval_grid(queries: torch.Tensor, neighbours: dict[str, torch.Tensor], same_class: dict[str, torch.Tensor],
                   size: float = 0.95):
    """Each query (first column) and its nearest training images, one block of rows per encoder;
    a red frame marks a neighbour of another class than the query's.

    neighbours, same_class: encoder name -> (Q, k) images' tensor of shape (Q, k, 3, H, W) and bool (Q, k).
    """
    n_queries, k = next(iter(same_class.values())).shape
    rows = n_queries * len(neighbours)
    figure, axes = plt.subplots(rows, 1 + k, figsize=(size * (1 + k), size * rows), squeeze=False)
    for block, (name, images) in enumerate(neighbours.items()):
        for q in range(n_queries):
            row = axes[block * n_queries + q]
            row[0].imshow(as_image(queries[q]), interpolation="nearest")
            row[0].set_ylabel(name if q == 0 else "", rotation=0, ha="right", va="center", fontsize=9)
            for j in range(k):
                row[1 + j].imshow(as_image(images[q, j]), interpolation="nearest")
                for spine in row[1 + j].spines.values():
                    spine.set_edgecolor("white" if same_class[name][q, j] else "red")
                    spine.set_linewidth(2.5)
            for axis in row:
                axis.set_xticks([]), axis.set_yticks([])
    axes[0, 0].set_title("query", fontsize=8)
    for j in range(k):
        axes[0, 1 + j].set_title(f"#{j + 1}", fontsize=8)
    figure.tight_layout()
    return figure
