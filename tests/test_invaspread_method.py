"""Tests of sslbook.methods.invaspread: how a batch becomes the two-term loss, bad inputs,
and a one-step smoke training."""
import math

import pytest
import torch
from torch import nn

from sslbook.augment import ViewRecipe, augment
from sslbook.methods.instdisc import instdisc_cifar
from sslbook.methods.invaspread import InvaSpread
from sslbook.networks import SmallCNN
from sslbook.train import Batch

from one_step import train_one_step


def tiny_invaspread(**options) -> InvaSpread:
    torch.manual_seed(0)
    return InvaSpread(SmallCNN(width=4, feature_dim=8), **options)


def random_images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def invaspread_by_loops(f: list[list[float]], f_hat: list[list[float]], tau: float) -> float:
    """The equation of Ye et al. (2019), term by term, on normalised features."""
    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b))

    f, f_hat = [unit(v) for v in f], [unit(v) for v in f_hat]
    n, total = len(f), 0.0
    for i in range(n):
        total -= math.log(math.exp(dot(f[i], f_hat[i]) / tau) / sum(math.exp(dot(f[k], f_hat[i]) / tau) for k in range(n)))
    for i in range(n):
        for j in range(n):
            if j != i:
                p = math.exp(dot(f[i], f[j]) / tau) / sum(math.exp(dot(f[k], f[j]) / tau) for k in range(n))
                total -= math.log(1 - p)
    return total / n


def test_training_loss_embeds_the_originals_and_one_augmented_copy():
    method = tiny_invaspread(temperature=0.2)
    images = random_images(6)
    batch = Batch(images, torch.zeros(6, dtype=torch.long), torch.arange(6), torch.Generator().manual_seed(5))
    loss = method.training_loss(batch)

    augmented = augment(images, method.recipe, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        f, f_hat = method.embed(torch.cat([images.float() / 255, augmented])).chunk(2)
    assert f.shape == (6, 128)
    expected = invaspread_by_loops(f.double().tolist(), f_hat.double().tolist(), 0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_the_labels_are_never_used():
    images = random_images(6)
    losses = []
    for labels in (torch.zeros(6, dtype=torch.long), torch.arange(6)):
        method = tiny_invaspread()
        batch = Batch(images, labels, torch.arange(6), torch.Generator().manual_seed(1))
        losses.append(method.training_loss(batch).item())
    assert losses[0] == losses[1]


def test_embedding_is_a_linear_layer_to_the_requested_size():
    method = tiny_invaspread(embedding_dim=16)
    assert isinstance(method.embedding, nn.Linear)
    assert (method.embedding.in_features, method.embedding.out_features) == (8, 16)


def test_recipe_is_the_authors_cifar_augmentation():
    recipe = instdisc_cifar()
    assert recipe.crop_scale == (0.2, 1.0)
    assert (recipe.brightness, recipe.contrast, recipe.saturation, recipe.hue) == (0.4, 0.4, 0.4, 0.4)
    assert recipe.jitter_p == 1.0 and recipe.grayscale_p == 0.2 and recipe.flip_p == 0.5
    assert recipe.blur_p == 0.0 and recipe.solarize_p == 0.0


@pytest.mark.parametrize("temperature", [0.0, -0.1])
def test_rejects_a_temperature_that_is_not_positive(temperature):
    with pytest.raises(ValueError, match="temperature must be > 0.*pass a positive temperature such as 0.1"):
        InvaSpread(SmallCNN(width=4, feature_dim=8), temperature=temperature)


def test_a_batch_of_one_image_is_rejected_with_a_clear_message():
    method = tiny_invaspread()
    batch = Batch(random_images(1), torch.zeros(1, dtype=torch.long), torch.arange(1), torch.Generator())
    with pytest.raises(ValueError, match="batch size N must be >= 2"):
        method.training_loss(batch)


def test_one_step_smoke_training():
    _, changed = train_one_step(tiny_invaspread(), random_images(8), batch_size=4, optimizer="adamw", lr=1e-3)
    assert all(changed)


def test_a_custom_recipe_is_used():
    recipe = ViewRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    method = tiny_invaspread(recipe=recipe)
    images = random_images(4)
    batch = Batch(images, torch.zeros(4, dtype=torch.long), torch.arange(4), torch.Generator().manual_seed(0))
    loss = method.training_loss(batch)
    with torch.no_grad():  # the identity view: x^_i = x_i, so both halves embed the same images
        f = method.embed(torch.cat([images.float() / 255] * 2))
    expected = invaspread_by_loops(f[:4].double().tolist(), f[4:].double().tolist(), 0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_invaspread_and_instdisc_draw_the_same_views():
    from sslbook.methods.instdisc import InstDisc

    encoder = SmallCNN(width=4, feature_dim=8)
    assert InvaSpread(encoder).recipe == InstDisc(encoder, n_data=4).recipe == instdisc_cifar()
