"""sslbook.augment against torchvision's per-image definitions, and the statistics of the views."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from PIL import Image

from sslbook import augment as A

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def cifar_images(n: int = 8) -> torch.Tensor:
    """n real CIFAR-10 train images (uint8, one per class first) from the shared folder."""
    root = Path(os.environ["SSLBOOK_DATA"]) if os.environ.get("SSLBOOK_DATA") else (
        Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
    )
    folder = root / "train"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no CIFAR sample folder {folder}; set SSLBOOK_DATA to a folder holding train/<class>/*.png"
        )
    classes = sorted(d for d in folder.iterdir() if d.is_dir())
    files = [sorted(classes[i % len(classes)].glob("*.png"))[i // len(classes)] for i in range(n)]
    return torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files])


def random_images(n: int, height: int = 32, width: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


def per_image(fn, images: torch.Tensor, *params) -> torch.Tensor:
    """Reference: apply torchvision's fn image by image with that image's parameters."""
    return torch.stack([fn(images[i], *(p[i].item() for p in params)) for i in range(len(images))])


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


# --------------------------------------------------------------------------- functional ops vs torchvision


def test_resized_crop_matches_torchvision_on_cifar_images():
    images = cifar_images(8)
    boxes = A.sample_crop_boxes(8, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = torch.stack(
        [TF.resized_crop(images[i].float() / 255, *boxes[i].tolist(), [32, 32], antialias=True) for i in range(8)]
    )
    close(A.resized_crop(images, boxes, 32), expected)
    close(A.resized_crop(images.float() / 255, boxes, 32), expected)


def test_resized_crop_upsampling_equals_antialias_true_and_false():
    images = random_images(16, 20, 28)
    boxes = A.sample_crop_boxes(16, 20, 28, (0.05, 0.6), (0.5, 2.0), torch.Generator().manual_seed(2))
    assert (boxes[:, 2] <= 24).all() and (boxes[:, 3] <= 30).all()  # every crop is upsampled to 24 x 30
    actual = A.resized_crop(images, boxes, (24, 30))
    for antialias in (True, False):
        expected = torch.stack(
            [TF.resized_crop(images[i], *boxes[i].tolist(), [24, 30], antialias=antialias) for i in range(16)]
        )
        close(actual, expected)


def test_resized_crop_downsampling_equals_plain_bilinear():
    images = random_images(8, 48, 40)
    boxes = torch.tensor([[0, 0, 48, 40], [3, 5, 30, 33], [10, 2, 25, 17], [0, 20, 48, 20]] * 2)
    expected = torch.stack(
        [TF.resized_crop(images[i], *boxes[i].tolist(), [16, 12], antialias=False) for i in range(8)]
    )
    close(A.resized_crop(images, boxes, (16, 12)), expected)


def test_resized_crop_float_boxes_follow_the_bilinear_formula():
    images = random_images(2, 6, 7)
    boxes = torch.tensor([[0.5, 1.25, 4.5, 3.0], [1.0, 0.0, 5.0, 6.5]])
    out_h, out_w = 5, 4
    expected = torch.empty(2, 3, out_h, out_w)
    for n in range(2):
        top, left, box_h, box_w = boxes[n].tolist()
        for oy in range(out_h):
            for ox in range(out_w):
                # interpolate's source position, clamped to the crop's first and last pixel
                y = top + min(max((oy + 0.5) * box_h / out_h - 0.5, 0.0), box_h - 1)
                x = left + min(max((ox + 0.5) * box_w / out_w - 0.5, 0.0), box_w - 1)
                y0, x0 = math.floor(y), math.floor(x)
                y1, x1 = min(y0 + 1, 5), min(x0 + 1, 6)
                wy, wx = y - y0, x - x0
                img = images[n]
                expected[n, :, oy, ox] = (
                    (1 - wy) * (1 - wx) * img[:, y0, x0] + (1 - wy) * wx * img[:, y0, x1]
                    + wy * (1 - wx) * img[:, y1, x0] + wy * wx * img[:, y1, x1]
                )
    close(A.resized_crop(images, boxes, (out_h, out_w)), expected)


def test_hflip_matches_torchvision_where_masked():
    images = random_images(6)
    mask = torch.tensor([True, False, True, True, False, False])
    expected = torch.stack([TF.horizontal_flip(im) if m else im for im, m in zip(images, mask)])
    close(A.hflip(images, mask), expected, atol=0)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (A.adjust_brightness, TF.adjust_brightness),
        (A.adjust_contrast, TF.adjust_contrast),
        (A.adjust_saturation, TF.adjust_saturation),
    ],
)
def test_colour_factors_match_torchvision(ours, theirs):
    images = torch.cat([cifar_images(4).float() / 255, random_images(12)])
    random_factors = torch.rand(12, generator=torch.Generator().manual_seed(3)) * 2
    factors = torch.cat([torch.tensor([0.0, 1.0, 1.4, 3.0]), random_factors])
    close(ours(images, factors), per_image(theirs, images, factors))


def test_hue_matches_torchvision_including_ties_and_grey_pixels():
    quantised = (random_images(8) * 4).round() / 4  # many pixels with two equal channels, some grey
    images = torch.cat([cifar_images(4).float() / 255, random_images(8), quantised])
    shifts = torch.linspace(-0.5, 0.5, 20)
    close(A.adjust_hue(images, shifts), per_image(TF.adjust_hue, images, shifts))


def test_grayscale_matches_torchvision_where_masked():
    images = torch.cat([cifar_images(3).float() / 255, random_images(3)])
    mask = torch.tensor([True, False, True, False, True, True])
    expected = torch.stack([TF.rgb_to_grayscale(im, 3) if m else im for im, m in zip(images, mask)])
    close(A.rgb_to_grayscale(images, mask), expected)


@pytest.mark.parametrize("kernel_size", [3, 5, 9])
def test_gaussian_blur_matches_torchvision_per_image_sigma(kernel_size):
    images = torch.cat([cifar_images(3).float() / 255, random_images(5)])
    sigmas = torch.tensor([0.1, 0.5, 1.0, 2.0, 0.3, 1.7, 0.9, 1.2])
    mask = torch.tensor([True, True, False, True, True, False, True, True])
    expected = torch.stack(
        [
            TF.gaussian_blur(im, [kernel_size] * 2, [s.item()] * 2) if m else im
            for im, s, m in zip(images, sigmas, mask)
        ]
    )
    close(A.gaussian_blur(images, sigmas, kernel_size, mask), expected)


def test_solarize_matches_torchvision_where_masked():
    images = random_images(4)
    mask = torch.tensor([True, False, True, True])
    expected = torch.stack([TF.solarize(im, 0.3) if m else im for im, m in zip(images, mask)])
    close(A.solarize(images, 0.3, mask), expected, atol=0)


def test_colour_jitter_applies_each_images_own_order():
    images = random_images(24, 8, 8)
    gen = torch.Generator().manual_seed(4)
    low, width = torch.tensor([0.6, 0.6, 0.6, -0.1]), torch.tensor([0.8, 0.8, 0.8, 0.2])
    factors = low + width * torch.rand(24, 4, generator=gen)  # brightness, contrast, saturation, hue
    order = torch.stack([torch.randperm(4, generator=gen) for _ in range(24)])
    apply = torch.rand(24, generator=gen) < 0.7
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    expected = images.clone()
    for n in range(24):
        if apply[n]:
            for op in order[n].tolist():
                expected[n] = ops[op](expected[n], factors[n, op].item())
    close(A._colour_jitter(images, factors, order, apply, (True,) * 4), expected)


# --------------------------------------------------------------------------- crop sampler


def test_crop_boxes_lie_inside_the_image_within_scale_and_ratio():
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    boxes = A.sample_crop_boxes(5000, 32, 40, scale, ratio, torch.Generator().manual_seed(5))
    assert boxes.dtype == torch.int64 and boxes.shape == (5000, 4)
    top, left, h, w = boxes.double().unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 40).all() and (h >= 1).all() and (w >= 1).all()
    # w and h are rounded from the sampled continuous values, so allow half a pixel each way.
    area = 32 * 40
    assert ((w + 0.5) * (h + 0.5) >= scale[0] * area).all() and ((w - 0.5) * (h - 0.5) <= scale[1] * area).all()
    assert ((w + 0.5) / (h - 0.5) >= ratio[0]).all() and ((w - 0.5) / (h + 0.5) <= ratio[1]).all()
    assert len(set(map(tuple, boxes.tolist()))) > 1000  # genuinely random


def test_crop_box_distribution_matches_torchvision_sampler():
    torch.manual_seed(6)
    image = torch.zeros(3, 32, 32)
    transform = T.RandomResizedCrop(32)
    params = [transform.make_params([image]) for _ in range(3000)]
    theirs = torch.tensor([[p["top"], p["left"], p["height"], p["width"]] for p in params])
    ours = A.sample_crop_boxes(3000, 32, 32, generator=torch.Generator().manual_seed(7))

    def stats(b):
        b = b.double()
        return torch.stack([b[:, 2] * b[:, 3] / 1024, (b[:, 3] / b[:, 2]).log(), b[:, 0], b[:, 1]], 1)

    s_ours, s_theirs = stats(ours), stats(theirs)
    stderr = (s_ours.var(0) / 3000 + s_theirs.var(0) / 3000).sqrt()
    assert ((s_ours.mean(0) - s_theirs.mean(0)).abs() < 4 * stderr).all()


@pytest.mark.parametrize("height, width, ratio", [(32, 32, (2.0, 3.0)), (20, 50, (0.5, 1.5)), (32, 32, (0.2, 0.4))])
def test_crop_fallback_is_torchvisions_central_crop(height, width, ratio):
    # scale (1, 1) with a ratio far from the image's: no candidate fits, every image falls back.
    expected = T.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=ratio).make_params([torch.zeros(3, height, width)])
    boxes = A.sample_crop_boxes(4, height, width, (1.0, 1.0), ratio, torch.Generator().manual_seed(8))
    assert boxes.tolist() == [[expected["top"], expected["left"], expected["height"], expected["width"]]] * 4


# --------------------------------------------------------------------------- augment and make_views

OFF = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_augment_output_shape_dtype_range_device(device, dtype):
    images = cifar_images(6).to(device)
    if dtype != torch.uint8:
        images = (images / 255).to(dtype)
    recipe = A.ViewRecipe(output_size=24, blur_p=0.5, solarize_p=0.5)
    out = A.augment(images, recipe, torch.Generator(device=device).manual_seed(0))
    assert out.shape == (6, 3, 24, 24) and out.dtype == torch.float32 and out.device.type == device
    assert out.min() >= 0 and out.max() <= 1


def test_augment_with_only_flip_and_full_crop_is_hflip():
    images = cifar_images(5)
    out = A.augment(images, A.ViewRecipe(**{**OFF, "flip_p": 1.0}))
    close(out, TF.horizontal_flip(images.float() / 255), atol=1e-6)
    close(A.augment(images, A.ViewRecipe(**OFF)), images.float() / 255, atol=1e-6)


def test_seeded_generator_repeats_and_images_differ():
    images = cifar_images(1).expand(16, -1, -1, -1)  # 16 copies of one image
    recipe = A.byol_cifar()[1]
    first = A.augment(images, recipe, torch.Generator().manual_seed(42))
    again = A.augment(images, recipe, torch.Generator().manual_seed(42))
    other = A.augment(images, recipe, torch.Generator().manual_seed(43))
    assert torch.equal(first, again) and not torch.equal(first, other)
    distinct = {tuple(v.flatten()[::97].tolist()) for v in first}
    assert len(distinct) == 16  # parameters are drawn per image


def test_uint8_input_equals_its_float_version():
    images = cifar_images(6)
    recipe = A.byol_cifar()[1]
    from_uint8 = A.augment(images, recipe, torch.Generator().manual_seed(5))
    close(A.augment(images.double() / 255, recipe, torch.Generator().manual_seed(5)), from_uint8, atol=1e-6)


def bernoulli_fraction(recipe: A.ViewRecipe, changed) -> float:
    images = random_images(4000, 8, 8, seed=9)
    out = A.augment(images, recipe, torch.Generator().manual_seed(10))
    return changed(images, out).double().mean().item()


@pytest.mark.parametrize(
    "field, p, changed",
    [
        ("grayscale_p", 0.2, lambda x, y: ((y[:, :1] == y).flatten(1).all(1))),
        ("flip_p", 0.3, lambda x, y: (y - x).flatten(1).abs().amax(1) > 1e-4),
        ("blur_p", 0.6, lambda x, y: (y - x).flatten(1).abs().amax(1) > 1e-4),
        ("solarize_p", 0.1, lambda x, y: (y - x).flatten(1).abs().amax(1) > 1e-4),
    ],
)
def test_probabilities_are_respected(field, p, changed):
    recipe = A.ViewRecipe(**{**OFF, field: p}, output_size=8, blur_sigma=(1.0, 2.0))  # a blur large enough to see
    assert abs(bernoulli_fraction(recipe, changed) - p) < 0.03


def test_jitter_probability_and_brightness_factor_range():
    recipe = A.ViewRecipe(**{**OFF, "jitter_p": 0.8}, output_size=4, brightness=0.4, contrast=0, saturation=0, hue=0)
    grey = torch.full((4000, 3, 4, 4), 0.5)
    factors = A.augment(grey, recipe, torch.Generator().manual_seed(11))[:, 0, 0, 0] / 0.5
    jittered = factors[(factors - 1).abs() > 1e-6]
    assert abs(len(jittered) / 4000 - 0.8) < 0.03
    assert jittered.min() >= 0.6 - 1e-6 and jittered.max() <= 1.4 + 1e-6
    assert abs(jittered.mean().item() - 1.0) < 0.01  # uniform on [0.6, 1.4]


def test_jitter_order_and_factors_are_drawn_per_image(monkeypatch):
    recorded = {}
    colour_jitter = A._colour_jitter

    def spy(x, factors, order, apply, enabled):
        recorded.update(factors=factors, order=order, apply=apply, enabled=enabled)
        return colour_jitter(x, factors, order, apply, enabled)

    monkeypatch.setattr(A, "_colour_jitter", spy)
    n = 4800
    A.augment(random_images(n, 4, 4), A.ViewRecipe(output_size=4), torch.Generator().manual_seed(12))
    order, factors = recorded["order"], recorded["factors"]
    assert recorded["enabled"] == (True,) * 4 and abs(recorded["apply"].double().mean().item() - 0.8) < 0.03
    assert (order.sort(dim=1).values == torch.arange(4)).all()  # every row is a permutation
    counts = torch.unique(order, dim=0, return_counts=True)[1]
    expected = n / 24
    assert len(counts) == 24 and (counts - expected).abs().max() < 5 * math.sqrt(expected)
    for column, (low, high) in enumerate([(0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)]):
        f = factors[:, column].double()
        assert f.min() >= low and f.max() <= high
        assert abs(f.mean().item() - (low + high) / 2) < 0.01 * (high - low)
        assert abs(f.std().item() - (high - low) / math.sqrt(12)) < 0.01 * (high - low)  # uniform


def test_make_views_single_and_per_view_recipes():
    images = cifar_images(4)
    views = A.make_views(images, A.simclr_cifar(), n_views=3, generator=torch.Generator().manual_seed(0))
    assert len(views) == 3 and all(v.shape == (4, 3, 32, 32) for v in views)
    assert not torch.equal(views[0], views[1])
    first, second = A.make_views(images, [A.ViewRecipe(**OFF), A.ViewRecipe(**{**OFF, "flip_p": 1.0})])
    close(first, images.float() / 255, atol=1e-6)
    close(second, TF.horizontal_flip(images.float() / 255), atol=1e-6)


def test_presets_follow_the_papers():
    simclr = A.simclr_cifar()
    assert (simclr.crop_scale, simclr.crop_ratio, simclr.output_size) == ((0.08, 1.0), (3 / 4, 4 / 3), 32)
    probabilities = (simclr.flip_p, simclr.jitter_p, simclr.grayscale_p, simclr.blur_p, simclr.solarize_p)
    assert probabilities == (0.5, 0.8, 0.2, 0.0, 0.0)
    assert (simclr.brightness, simclr.contrast, simclr.saturation, simclr.hue) == (0.4, 0.4, 0.4, 0.1)
    view1, view2 = A.byol_cifar()
    for view in (view1, view2):
        assert (view.brightness, view.contrast, view.saturation, view.hue, view.jitter_p) == (0.4, 0.4, 0.2, 0.1, 0.8)
        assert view.grayscale_p == 0.2
    assert (view1.blur_p, view1.solarize_p, view2.blur_p, view2.solarize_p) == (0.0, 0.0, 0.0, 0.2)  # no blur on CIFAR


def views_image_by_image(images: torch.Tensor, recipe: A.ViewRecipe, seed: int) -> torch.Tensor:
    """Reference: augment's views made one image at a time with the public single operations, from
    the parameters drawn in augment's order (crop boxes, flip, jitter, the four factors, the jitter
    order, grayscale, blur, sigma, solarize), so the same seed must give the same views."""
    generator = torch.Generator().manual_seed(seed)
    n, _, height, width = images.shape

    def uniform(low, high):
        return torch.rand(n, generator=generator).mul_(high - low).add_(low)

    def bernoulli(p):
        return torch.rand(n, generator=generator) < p

    boxes = A.sample_crop_boxes(n, height, width, recipe.crop_scale, recipe.crop_ratio, generator)
    flip, jitter = bernoulli(recipe.flip_p), bernoulli(recipe.jitter_p)
    strengths = (recipe.brightness, recipe.contrast, recipe.saturation, recipe.hue)
    factors = [uniform(max(0.0, 1 - s), 1 + s) for s in strengths[:3]] + [uniform(-recipe.hue, recipe.hue)]
    order = torch.rand(n, 4, generator=generator).argsort(dim=1)
    gray, blur = bernoulli(recipe.grayscale_p), bernoulli(recipe.blur_p)
    sigmas = uniform(*recipe.blur_sigma)
    solar = bernoulli(recipe.solarize_p)
    adjustments = (A.adjust_brightness, A.adjust_contrast, A.adjust_saturation, A.adjust_hue)
    views = []
    for i in range(n):
        view = A.resized_crop(images[i:i + 1], boxes[i:i + 1], recipe.output_size)
        view = A.hflip(view) if flip[i] else view
        for op in order[i].tolist() if jitter[i] else []:
            if strengths[op] > 0:
                view = adjustments[op](view, factors[op][i].item())
        view = A.rgb_to_grayscale(view) if gray[i] else view
        view = A.gaussian_blur(view, sigmas[i].item(), recipe.blur_kernel_size) if blur[i] else view
        # Solarize written out: a blur may leave a pixel an ulp above 1, which A.solarize refuses as input
        inverted = torch.where(view >= recipe.solarize_threshold, 1 - view, view)
        views.append(inverted if solar[i] else view)
    return torch.cat(views)


@pytest.mark.parametrize(
    "recipe",
    [A.simclr_cifar(), *A.byol_cifar(),
     A.ViewRecipe(output_size=23, brightness=0.9, contrast=0.0, saturation=1.5, hue=0.5, jitter_p=0.9,
                  blur_p=0.5, blur_kernel_size=5, solarize_p=0.5, solarize_threshold=0.3)],
    ids=["simclr", "byol_1", "byol_2", "odd"],
)
def test_batched_views_equal_the_image_by_image_views_of_the_same_seed(recipe, monkeypatch):
    monkeypatch.setattr(A, "CPU_CHUNK_PIXELS", 100 * 32 * 32)  # 300 images are then several chunks
    images = torch.cat([cifar_images(20), (random_images(280) * 255).round().to(torch.uint8)])
    close(A.augment(images, recipe, torch.Generator().manual_seed(3)), views_image_by_image(images, recipe, 3),
          atol=1e-6)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(3, 32, 32), "4-D"),
        (torch.rand(2, 4, 32, 32), "3 \\(RGB\\) channels"),
        (torch.rand(2, 3, 8, 8) * 255, "pass uint8 images or floats in \\[0, 1\\]"),
        (torch.rand(2, 3, 8, 8) - 0.5, "pass uint8 images or floats in \\[0, 1\\]"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "uint8 or floating point"),
    ],
)
def test_bad_images_raise(images, match):
    with pytest.raises(ValueError, match=match):
        A.augment(images, A.simclr_cifar())


@pytest.mark.parametrize(
    "boxes, match",
    [
        (torch.tensor([[0, 0, 8, 8]]), "shape \\(2, 4\\)"),
        (torch.tensor([[0, 0, 8, 8], [4, 0, 8, 8]]), "inside the 8x8 image"),
        (torch.tensor([[0, 0, 8, 8], [0, 0, 0, 4]]), "height, width >= 1"),
        (torch.tensor([[0, 0, 8, 8], [-1.0, 0, 4, 4]]), "clip the boxes"),
    ],
)
def test_bad_boxes_raise(boxes, match):
    with pytest.raises(ValueError, match=match):
        A.resized_crop(random_images(2, 8, 8), boxes, 8)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: A.make_views(x, A.simclr_cifar(), n_views=0), "n_views must be an int >= 1"),
        (lambda x: A.make_views(x, A.byol_cifar(), n_views=3), "got 2 recipes but n_views=3"),
        (lambda x: A.augment(x, "simclr"), "recipe must be a ViewRecipe"),
        (lambda x: A.adjust_hue(x, 0.7), "hue shifts must lie in \\[-0.5, 0.5\\]"),
        (lambda x: A.adjust_brightness(x, torch.tensor([1.0, -0.1])), "brightness factors"),
        (lambda x: A.adjust_contrast(x, torch.ones(3)), "one value per image"),
        (lambda x: A.hflip(x, torch.ones(2)), "bool tensor of shape \\(2,\\)"),
        (lambda x: A.gaussian_blur(x, 1.0, 4), "odd positive int"),
        (lambda x: A.gaussian_blur(x, 1.0, 17), "too large"),
        (lambda x: A.gaussian_blur(x, 0.0, 3), "sigmas must be > 0"),
        (lambda x: A.solarize(x, 1.5), "threshold must be in \\[0, 1\\]"),
        (lambda x: A.sample_crop_boxes(2, 8, 8, scale=(0.5, 0.1)), "scale must satisfy"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(random_images(2, 8, 8))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(output_size=0), "output_size"),
        (dict(crop_scale=(0.9, 0.1)), "crop_scale must satisfy"),
        (dict(crop_scale=(0.0, 1.0)), "crop_scale must satisfy"),
        (dict(crop_scale=(0.5, 1.5)), "crop_scale must satisfy"),
        (dict(crop_ratio=(4 / 3, 3 / 4)), "crop_ratio must satisfy"),
        (dict(crop_ratio=0.5), "crop_ratio must be a pair"),
        (dict(flip_p=1.5), "flip_p must be a probability"),
        (dict(jitter_p=-0.1), "jitter_p must be a probability"),
        (dict(brightness=-0.4), "brightness must be a jitter strength"),
        (dict(hue=0.6), "hue must be in \\[0, 0.5\\]"),
        (dict(blur_sigma=(0.0, 2.0)), "blur_sigma must satisfy"),
        (dict(blur_kernel_size=4), "blur_kernel_size must be an odd"),
        (dict(output_size=8, blur_kernel_size=17), "too large for output_size"),
        (dict(solarize_threshold=2.0), "solarize_threshold"),
    ],
)
def test_bad_recipe_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        A.ViewRecipe(**kwargs)


def test_a_recipe_prints_one_line_per_step_and_keeps_every_field_in_its_repr():
    recipe = A.ViewRecipe(crop_scale=(0.2, 1.0), blur_p=0.5, solarize_p=0.1)
    lines = str(recipe).splitlines()
    assert lines[0] == "ViewRecipe, 32x32 views:" and len(lines) == 7
    assert all(len(line) <= 88 for line in lines)
    assert "scale 0.2 to 1" in lines[1] and "p = 0.5: sigma 0.1 to 2 pixels" in lines[5]
    assert lines[6].split() == ["solarize:", "p", "=", "0.1:", "pixels", "from", "0.5", "up"]
    assert repr(recipe).startswith("ViewRecipe(output_size=32, crop_scale=(0.2, 1.0)")
