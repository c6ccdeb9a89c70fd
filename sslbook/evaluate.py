"""Evaluating representations: weighted kNN, linear probe, alignment and uniformity."""
from __future__ import annotations

import collections
import copy
import statistics

import torch
import torch.nn.functional as F
from torch import nn

from .augment import ViewRecipe, make_views
from .data import ImageData, balanced_indices
from .digests import state_digest
from .losses import align_loss, uniform_loss


FEATURE_CACHE_SIZE = 8  # extractions kept: a chapter extracts the same images with the same weights often
_feature_cache: collections.OrderedDict = collections.OrderedDict()


@torch.no_grad()
def extract_features(encoder: nn.Module, images: torch.Tensor, batch_size: int = 512,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Features of images (uint8, or float in [0, 1]), computed in eval mode, in
    batches; returned on the CPU as float32.

    The last ``FEATURE_CACHE_SIZE`` results are kept, each for the encoder's weights (by content)
    and that very images tensor unchanged since (its in-place version counter), and copied out.
    """
    if device is None:
        parameter = next(iter(encoder.parameters()), None)
        device = parameter.device if parameter is not None else images.device
    key = (type(encoder).__qualname__, state_digest(encoder), id(images), images._version, batch_size, str(device))
    cached = _feature_cache.get(key)
    if cached is not None and cached[0] is images:
        _feature_cache.move_to_end(key)
        return cached[1].clone()
    was_training = encoder.training
    encoder.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        batch = batch.float().div_(255) if batch.dtype == torch.uint8 else batch
        chunks.append(encoder(batch).float().cpu())
    encoder.train(was_training)
    features = torch.cat(chunks)
    _feature_cache[key] = (images, features.clone())  # the tensor itself: its id stays its own while kept
    while len(_feature_cache) > FEATURE_CACHE_SIZE:
        _feature_cache.popitem(last=False)
    return features


class PixelEncoder(nn.Module):
    """The pixels themselves as features, (N, 3*H*W): the baseline with no learning at all."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                n_classes: int, k: int = 200, temperature: float = 0.1, chunk_size: int = 1024) -> torch.Tensor:
    """Weighted kNN on cosine similarity (Wu et al. 2018): each of the k nearest
    training features votes for its class with weight exp(similarity / temperature)."""
    if k < 1 or k > len(train_features):
        raise ValueError(f"k must be between 1 and the {len(train_features)} training features, got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train features have dimension {train_features.shape[1]} but test features "
            f"{test_features.shape[1]}; extract both with the same encoder"
        )
    train_features = F.normalize(train_features.float(), dim=1)
    test_features = F.normalize(test_features.float(), dim=1)
    predictions = []
    for start in range(0, len(test_features), chunk_size):
        similarity = test_features[start:start + chunk_size] @ train_features.T
        top_similarity, top_index = similarity.topk(k, dim=1)
        votes = torch.zeros(len(similarity), n_classes, device=similarity.device)
        votes.scatter_add_(1, train_labels[top_index], (top_similarity / temperature).exp())
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(train_features, train_labels, test_features, test_labels, k: int = 200,
                 temperature: float = 0.1) -> float:
    """Top-1 accuracy (in %) of the weighted kNN classifier."""
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    predicted = knn_predict(train_features, train_labels, test_features, n_classes, k, temperature)
    return 100.0 * (predicted == test_labels).float().mean().item()


def linear_probe(train_features, train_labels, test_features, test_labels, steps: int = 300,
                 lr: float = 0.05, weight_decay: float = 1e-4, seed: int = 0,
                 standardise_with: torch.Tensor | None = None) -> float:
    """Accuracy (in %) of a logistic-regression classifier on frozen, standardised features.

    Full-batch Adam on the cross-entropy; the features never change, only the
    linear layer learns, so the number measures how linearly separable they are.
    ``standardise_with``: the features whose mean and deviation standardise the inputs (default:
    ``train_features``), e.g. those of every training image when only a few carry labels.
    """
    reference = train_features if standardise_with is None else standardise_with
    mean, std = reference.mean(0), reference.std(0) + 1e-6
    train_x, test_x = (train_features - mean) / std, (test_features - mean) / std
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    generator = torch.Generator().manual_seed(seed)
    classifier = nn.Linear(train_x.shape[1], n_classes)
    with torch.no_grad():
        classifier.weight.copy_(torch.randn(classifier.weight.shape, generator=generator) * 0.01)
        classifier.bias.zero_()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(classifier(train_x), train_labels).backward()
        optimizer.step()
    with torch.no_grad():
        return 100.0 * (classifier(test_x).argmax(1) == test_labels).float().mean().item()


EVALUATION_VERSION = 2  # raised whenever ``evaluate`` measures otherwise: saved scores of another are not reused
FEW_LABELS = 10  # labels per class of the few-label probe that every evaluation reports
FEW_LABEL_DRAWS = 5  # draws of those labelled images, averaged: one draw of 100 images is noisy


def few_label_probe(train_features, train_labels, test_features, test_labels, per_class: int,
                    draws: int = FEW_LABEL_DRAWS, n_classes: int | None = None) -> list[float]:
    """Linear-probe accuracies (%) when only ``per_class`` training images of each class carry their
    label, one accuracy per draw of those images (draw ``d`` uses seed ``d``). All training
    features standardise the inputs, as unlabelled images are there for the taking."""
    n_classes = n_classes or int(max(train_labels.max(), test_labels.max())) + 1
    classes = [str(label) for label in range(n_classes)]
    accuracies = []
    for draw in range(draws):
        chosen = balanced_indices(train_labels, classes, per_class, seed=draw)
        accuracies.append(linear_probe(train_features[chosen], train_labels[chosen], test_features, test_labels,
                                       standardise_with=train_features))
    return accuracies


@torch.no_grad()
def alignment_uniformity(encoder: nn.Module, images: torch.Tensor, recipe: ViewRecipe, seed: int = 0,
                         batch_size: int = 512) -> tuple[float, float]:
    """Wang and Isola's L_align (alpha=2) over positive pairs made by ``recipe``,
    and L_uniform (t=2) over the first view, on L2-normalised features."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    first, second = make_views(images, recipe, n_views=2, generator=generator)
    x = F.normalize(extract_features(encoder, first, batch_size), dim=1)
    y = F.normalize(extract_features(encoder, second, batch_size), dim=1)
    return align_loss(x, y).item(), uniform_loss(x).item()


@torch.no_grad()
def neighbour_purity(features: torch.Tensor, labels: torch.Tensor, n_classes: int, k: int = 10) -> torch.Tensor:
    """Per class, the share of same-class images among each image's ``k`` nearest others (cosine
    similarity, the image itself left out), averaged over the class's images: how well the class
    gathers in the feature space that an embedding map draws. Chance is the class's share of the data."""
    if not 1 <= k < len(features):
        raise ValueError(f"k must be between 1 and {len(features) - 1} (the other images), got {k}")
    features = F.normalize(features.float(), dim=1)
    similarity = features @ features.T
    similarity.fill_diagonal_(-float("inf"))
    neighbours = similarity.topk(k, dim=1).indices
    same = (labels[neighbours] == labels[:, None]).float().mean(dim=1)
    return torch.zeros(n_classes).scatter_add_(0, labels, same) / torch.bincount(labels, minlength=n_classes)


@torch.no_grad()
def nearest_training_images(train_features: torch.Tensor, test_features: torch.Tensor, k: int) -> torch.Tensor:
    """For every test feature, the indices of its ``k`` most cosine-similar training features, nearest first."""
    if not 1 <= k <= len(train_features):
        raise ValueError(f"k must be between 1 and the {len(train_features)} training features, got {k}")
    similarity = F.normalize(test_features.float(), dim=1) @ F.normalize(train_features.float(), dim=1).T
    return similarity.topk(k, dim=1).indices


def random_init_like(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``encoder`` with freshly initialised weights: the random-init baseline."""
    torch.manual_seed(seed)
    baseline = copy.deepcopy(encoder)
    for module in baseline.modules():
        if hasattr(module, "reset_parameters") and module is not baseline:
            module.reset_parameters()
    return baseline


def evaluate(encoder: nn.Module, train: ImageData, test: ImageData, recipe: ViewRecipe | None = None,
             k: int = 200, temperature: float = 0.1, probe: bool = True) -> dict[str, float]:
    """kNN and linear-probe accuracy (%), the latter also with ``FEW_LABELS`` labels per class (the
    mean of ``FEW_LABEL_DRAWS`` draws; left out when a class has fewer training images) and, when
    ``recipe`` is given, alignment and uniformity."""
    train_features = extract_features(encoder, train.images)
    test_features = extract_features(encoder, test.images)
    train_labels, test_labels = train.labels.cpu(), test.labels.cpu()
    results = {"knn": knn_accuracy(train_features, train_labels, test_features, test_labels, k, temperature)}
    if probe:
        results["linear"] = linear_probe(train_features, train_labels, test_features, test_labels)
        if torch.bincount(train_labels, minlength=len(train.classes)).min() >= FEW_LABELS:
            results[f"linear_{FEW_LABELS}"] = statistics.fmean(few_label_probe(
                train_features, train_labels, test_features, test_labels, FEW_LABELS, n_classes=len(train.classes)))
    if recipe is not None:
        results["alignment"], results["uniformity"] = alignment_uniformity(encoder, test.images, recipe)
    return results
