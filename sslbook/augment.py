"""Batched data augmentation: many random views of a batch in a few tensor ops.

Contrastive and non-contrastive methods learn by making two augmented views of
each sample agree: SimCLR (Chen et al., 2020) turns a batch of ``N`` samples
``x`` into ``2N`` views ``x̃_i, x̃_j``; Barlow Twins (Zbontar et al., 2021)
calls them ``x^A, x^B``; BYOL (Grill et al., 2020) feeds them to its online
and target networks. The views are where the invariances come from, so this
module follows torchvision's definitions of every operation exactly, but
applies them to a whole batch at once, on whatever device the batch lives on,
with every random parameter drawn independently per image.

Inputs are uint8 images ``(N, 3, H, W)`` or floats in [0, 1]; outputs are
float32 in [0, 1]. Nothing here normalises with a mean and std: the encoders
do that themselves.

A view is made in this order, as in SimCLR's and BYOL's recipes:
random resized crop -> horizontal flip -> colour jitter (brightness,
contrast, saturation, hue) -> grayscale -> Gaussian blur -> solarize.
``augment`` folds the flip into the crop (it mirrors the sampling grid, which
gives exactly ``hflip`` of the crop).

No host-device sync: every step runs on the whole batch with fixed shapes, and
each image's drawn parameters decide what the step does to it (an image not
drawn for the grayscale, blur or solarize is passed through unchanged, bit for
bit). Picking out the images drawn for a step instead (nonzero, boolean
indexing) makes a GPU host wait for the device at every step, since the number
of images is known only there. tests/test_host_syncs.py counts such ops.

Colour-jitter order: torchvision's ``ColorJitter`` applies its four
adjustments in a fresh random order at each call. Here every image gets its
own random order too (one of the 24 permutations), so the distribution of
views is the same as torchvision's. A fixed order would be cheaper but would
change the views: e.g. contrast would then always blend towards the mean of the
already brightened image. ``_colour_jitter`` lines the images' orders up on
their hue, so that the batch takes the costly hue once, and every other step is
one blend per image.

Random numbers: every sampler takes an optional ``torch.Generator``. With a
generator, parameters are drawn on the generator's device and moved to the
images' device (so a CPU generator gives the same views of the same batch on
CPU and on CUDA, up to floating-point rounding); without one, they are drawn
from torch's default generator of the images' device.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

GRAYSCALE_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision
CROP_TRIES = 10  # torchvision's RandomResizedCrop: 10 tries, then a central crop
CPU_CHUNK_PIXELS = 2**19  # output pixels transformed together on the CPU, 512 CIFAR views (see _augment)


# --------------------------------------------------------------------------- recipe


def _check_probability(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}; pass e.g. {name}=0.5")


def _check_range(name: str, value: object, low: float, high: float, example: str) -> None:
    """A (min, max) pair with low < min <= max <= high (low excluded, high included)."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
        raise ValueError(f"{name} must be a pair (min, max) of numbers, got {value!r}; pass e.g. {name}={example}")
    lo, hi = value
    if not (low < lo <= hi <= high):
        raise ValueError(
            f"{name} must satisfy {low} < min <= max <= {high}, got {tuple(value)!r}; "
            f"order the pair as (min, max) and keep it in range, e.g. {name}={example}"
        )


def _check_jitter_strength(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value >= 0.0):
        raise ValueError(
            f"{name} must be a jitter strength >= 0 (factor drawn from [max(0, 1-{name}), 1+{name}]), "
            f"got {value!r}; pass e.g. {name}=0.4, or 0 to switch it off"
        )


@dataclass(frozen=True)
class ViewRecipe:
    """How to draw one random view; the defaults are SimCLR's CIFAR-10 recipe.

    output_size: side of the square output view, in pixels.
    crop_scale: (min, max) fraction of the image area kept by the random resized crop.
    crop_ratio: (min, max) aspect ratio width/height of the crop, sampled log-uniformly.
    flip_p: probability of a horizontal flip.
    jitter_p: probability of applying colour jitter (all four adjustments).
    brightness, contrast, saturation: strengths s; each factor is drawn
        uniformly from [max(0, 1 - s), 1 + s]. 0 switches the adjustment off.
    hue: strength in [0, 0.5]; the hue shift is drawn uniformly from [-hue, hue].
    grayscale_p: probability of converting the view to grayscale (3 equal channels).
    blur_p: probability of a Gaussian blur; blur_sigma: (min, max) of its
        standard deviation in pixels, drawn uniformly per image.
    blur_kernel_size: odd side of the blur kernel. BYOL uses 23 on 224-pixel
        ImageNet images (about a tenth of the side); on 32-pixel CIFAR images
        a tenth is 3, the default here.
    solarize_p: probability of solarizing; pixels >= solarize_threshold become 1 - pixel.
    """

    output_size: int = 32
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_size: int = 3
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5

    def __str__(self) -> str:
        """One line per step of the pipeline, in the order they are applied (``repr`` keeps every field)."""
        steps = {
            "crop": f"scale {self.crop_scale[0]:g} to {self.crop_scale[1]:g} of the area, aspect ratio "
                    f"{self.crop_ratio[0]:.3g} to {self.crop_ratio[1]:.3g}",
            "flip": f"p = {self.flip_p:g}",
            "colour jitter": f"p = {self.jitter_p:g}: brightness {self.brightness:g}, contrast {self.contrast:g}, "
                             f"saturation {self.saturation:g}, hue {self.hue:g}",
            "grayscale": f"p = {self.grayscale_p:g}",
            "blur": f"p = {self.blur_p:g}: sigma {self.blur_sigma[0]:g} to {self.blur_sigma[1]:g} pixels, "
                    f"kernel {self.blur_kernel_size}",
            "solarize": f"p = {self.solarize_p:g}: pixels from {self.solarize_threshold:g} up",
        }
        width = max(map(len, steps)) + 1
        return "\n".join([f"ViewRecipe, {self.output_size}x{self.output_size} views:",
                          *(f"  {name + ':':<{width}} {text}" for name, text in steps.items())])

    def __post_init__(self) -> None:
        if not (isinstance(self.output_size, int) and self.output_size >= 1):
            raise ValueError(
                f"output_size must be a positive int, got {self.output_size!r}; pass e.g. output_size=32"
            )
        _check_range("crop_scale", self.crop_scale, 0.0, 1.0, "(0.08, 1.0)")
        _check_range("crop_ratio", self.crop_ratio, 0.0, math.inf, "(3/4, 4/3)")
        _check_range("blur_sigma", self.blur_sigma, 0.0, math.inf, "(0.1, 2.0)")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            _check_probability(name, getattr(self, name))
        for name in ("brightness", "contrast", "saturation"):
            _check_jitter_strength(name, getattr(self, name))
        if not (isinstance(self.hue, (int, float)) and 0.0 <= self.hue <= 0.5):
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue!r}; pass e.g. hue=0.1, or 0 to switch it off")
        k = self.blur_kernel_size
        if not (isinstance(k, int) and k >= 1 and k % 2 == 1):
            raise ValueError(f"blur_kernel_size must be an odd positive int, got {k!r}; pass e.g. blur_kernel_size=3")
        if k // 2 >= self.output_size:
            raise ValueError(
                f"blur_kernel_size={k} is too large for output_size={self.output_size} (reflect padding needs "
                f"kernel_size // 2 < output_size); pass a blur_kernel_size below {2 * self.output_size}"
            )
        if not (isinstance(self.solarize_threshold, (int, float)) and 0.0 <= self.solarize_threshold <= 1.0):
            raise ValueError(
                f"solarize_threshold must be in [0, 1], got {self.solarize_threshold!r}; "
                "pass e.g. solarize_threshold=0.5"
            )


def simclr_cifar() -> ViewRecipe:
    """SimCLR's CIFAR-10 view (Chen et al., 2020, appendix B.9).

    Random resized crop with scale (0.08, 1), horizontal flip, colour jitter of
    strength 0.5, i.e. (brightness, contrast, saturation, hue) = (0.4, 0.4, 0.4, 0.1)
    applied with p = 0.8, grayscale with p = 0.2, and no blur on CIFAR.
    """
    return ViewRecipe()


def byol_cifar() -> tuple[ViewRecipe, ViewRecipe]:
    """BYOL's two asymmetric views (Grill et al., 2020, table 6), as CIFAR-10 references run them.

    Both: random resized crop (0.08, 1), flip, colour jitter (0.4, 0.4, 0.2, 0.1)
    with p = 0.8, grayscale p = 0.2; view 2 (x') is solarized with p = 0.2. The paper's
    ImageNet views also blur (view 1 always, view 2 with p = 0.1); on 32x32 images the
    CIFAR configurations of solo-learn (``augmentations/asymmetric.yaml``: blur p = 0) and
    lightly switch blur off, and so does this recipe: a blur of a few pixels removes
    most of a CIFAR image's detail.
    """
    common = dict(saturation=0.2, blur_p=0.0)
    return ViewRecipe(**common, solarize_p=0.0), ViewRecipe(**common, solarize_p=0.2)


# --------------------------------------------------------------------------- inputs


def _float_images(images: torch.Tensor, check_range: bool = True) -> torch.Tensor:
    """Validate a batch x of shape (N, 3, H, W) and return it as float32 in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(
            f"images must be a torch.Tensor (N, 3, H, W), got {type(images).__name__}; convert with torch.as_tensor"
        )
    if images.ndim != 4:
        raise ValueError(
            f"images must be 4-D (N, 3, H, W), got shape {tuple(images.shape)}; "
            "add a batch dimension with images.unsqueeze(0) for a single image"
        )
    if images.shape[1] != 3:
        raise ValueError(
            f"images must have 3 (RGB) channels in dim 1, got shape {tuple(images.shape)}; "
            "pass channels-first RGB images (permute(0, 3, 1, 2) for channels-last, repeat gray images to 3 channels)"
        )
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if not images.is_floating_point():
        raise ValueError(
            f"images must be uint8 or floating point, got {images.dtype}; pass uint8 images or floats in [0, 1]"
        )
    if check_range and images.numel() > 0:
        low, high = torch.aminmax(images)
        if not (low >= 0 and high <= 1):
            raise ValueError(
                f"float images must lie in [0, 1], got values in [{low.item():.4g}, {high.item():.4g}]; "
                "pass uint8 images or floats in [0, 1] (divide 0..255 floats by 255, undo any normalisation)"
            )
    return images.to(torch.float32)


def _per_image(values: torch.Tensor | float, n: int, name: str, device: torch.device) -> torch.Tensor:
    """A per-image parameter as a float32 tensor (N,) on ``device``; a number is used for every image."""
    if isinstance(values, (int, float)):
        return torch.full((n,), float(values), device=device)
    values = torch.as_tensor(values)
    if values.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},), one value per image, got {tuple(values.shape)}; pass one value per image"
        )
    return values.to(device=device, dtype=torch.float32)


def _per_image_mask(mask: torch.Tensor | None, n: int, name: str, device: torch.device) -> torch.Tensor:
    """A boolean (N,) mask on ``device``; None selects every image."""
    if mask is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    mask = torch.as_tensor(mask)
    if mask.shape != (n,) or mask.dtype != torch.bool:
        raise ValueError(
            f"{name} must be a bool tensor of shape ({n},), got {mask.dtype} {tuple(mask.shape)}; "
            "pass one True/False per image (e.g. torch.rand(n) < p)"
        )
    return mask.to(device)


def _check_values(values: torch.Tensor, low: float, high: float, name: str, example: str) -> None:
    if not bool(((values >= low) & (values <= high)).all()):
        raise ValueError(
            f"{name} must lie in [{low}, {high}], "
            f"got values in [{values.min().item():.4g}, {values.max().item():.4g}]; "
            f"pass e.g. {example}"
        )


def _sampling_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return generator.device if generator is not None else fallback


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device).mul_(high - low).add_(low)


def _bernoulli(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) < p


# --------------------------------------------------------------------------- geometry


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw n random-resized-crop boxes, torchvision's algorithm vectorised over images.

    Inception-style cropping (Szegedy et al., 2015), as in torchvision's
    ``RandomResizedCrop``: a target area ``s * height * width`` with s uniform in
    ``scale`` and an aspect ratio r (width / height) log-uniform in ``ratio`` give
    ``w = round(sqrt(s*H*W*r))``, ``h = round(sqrt(s*H*W/r))``. Each image draws 10
    such candidates at once and keeps the first that fits inside the image, at a
    uniformly random integer position; if none fits, it takes the central crop
    with the ratio clamped to ``ratio``.

    Returns int64 boxes (n, 4) = (top, left, height, width) on ``device``
    (default: the generator's device, else CPU).
    """
    if not (isinstance(n, int) and n >= 0):
        raise ValueError(f"n must be a non-negative int, got {n!r}; pass the batch size")
    if not (isinstance(height, int) and isinstance(width, int) and height >= 1 and width >= 1):
        raise ValueError(f"height and width must be positive ints, got {height!r} x {width!r}; pass the image size")
    _check_range("scale", scale, 0.0, 1.0, "(0.08, 1.0)")
    _check_range("ratio", ratio, 0.0, math.inf, "(3/4, 4/3)")
    if device is None:
        device = _sampling_device(generator, torch.device("cpu"))
    area = height * width
    target_area = area * _uniform(n * CROP_TRIES, scale[0], scale[1], generator, device)
    log_ratio = _uniform(n * CROP_TRIES, math.log(ratio[0]), math.log(ratio[1]), generator, device)
    aspect = log_ratio.exp_()
    w = (target_area * aspect).sqrt_().round_().view(n, CROP_TRIES)
    h = (target_area / aspect).sqrt_().round_().view(n, CROP_TRIES)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)

    # Central-crop fallback, the same for every image.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = int(round(height * ratio[1])), height
    else:
        fallback_w, fallback_h = width, height

    any_fits = fits.any(dim=1)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first True
    crop_w = torch.where(any_fits, w.gather(1, first).squeeze(1), float(fallback_w))
    crop_h = torch.where(any_fits, h.gather(1, first).squeeze(1), float(fallback_h))
    # Uniform integer position in [0, H - h] x [0, W - w]; the fallback is centred.
    top = (torch.rand(n, generator=generator, device=device) * (height - crop_h + 1)).floor_()
    left = (torch.rand(n, generator=generator, device=device) * (width - crop_w + 1)).floor_()
    top = torch.where(any_fits, top, ((height - crop_h) / 2).floor())
    left = torch.where(any_fits, left, ((width - crop_w) / 2).floor())
    return torch.stack((top, left, crop_h, crop_w), dim=1).to(torch.int64)


def _check_boxes(boxes: torch.Tensor, n: int, height: int, width: int) -> torch.Tensor:
    boxes = torch.as_tensor(boxes)
    if boxes.shape != (n, 4):
        raise ValueError(
            f"boxes must have shape ({n}, 4) = (top, left, height, width) per image, got {tuple(boxes.shape)}; "
            "pass one box per image, e.g. from sample_crop_boxes"
        )
    boxes = boxes.to(torch.float32)
    top, left, box_h, box_w = boxes.unbind(dim=1)
    inside = torch.isfinite(boxes).all(dim=1) & (box_h >= 1) & (box_w >= 1) & (top >= 0) & (left >= 0)
    inside &= (top + box_h <= height) & (left + box_w <= width)
    if not bool(inside.all()):
        bad = int((~inside).nonzero()[0])
        raise ValueError(
            f"boxes must lie inside the {height}x{width} image with height, width >= 1; box {bad} is "
            f"{boxes[bad].tolist()} (top, left, height, width); clip the boxes to the image or use sample_crop_boxes"
        )
    return boxes


def _source_coordinates(start: torch.Tensor, length: torch.Tensor, out: int, full: int) -> torch.Tensor:
    """Normalised grid_sample coordinates (N, out) reading a crop [start, start + length) along one axis.

    Same rule as ``F.interpolate(mode="bilinear", align_corners=False)``:
    output pixel o reads crop position (o + 1/2) * length / out - 1/2, clamped
    to the crop's first and last pixel, so that no pixel outside the crop leaks in.
    """
    o = torch.arange(out, device=start.device, dtype=torch.float32) + 0.5
    crop_pos = (o * (length / out).unsqueeze(1) - 0.5).clamp_(min=0)
    crop_pos = torch.minimum(crop_pos, (length - 1).unsqueeze(1))
    pixel = start.unsqueeze(1) + crop_pos
    return (2 * pixel + 1) / full - 1  # align_corners=False normalisation


def _resized_crop(
    x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Resized crop; images with flip[n] are also mirrored, by reading their columns right to left.

    Mirroring the sampling grid gives exactly ``_hflip`` of the crop, without another pass over the images.
    """
    n, _, height, width = x.shape
    top, left, box_h, box_w = boxes.to(device=x.device, dtype=torch.float32).unbind(dim=1)
    gy = _source_coordinates(top, box_h, size[0], height)
    gx = _source_coordinates(left, box_w, size[1], width)
    if flip is not None:
        gx = torch.where(flip.unsqueeze(1), gx.flip(1), gx)
    grid = torch.stack(
        (gx.unsqueeze(1).expand(n, size[0], size[1]), gy.unsqueeze(2).expand(n, size[0], size[1])), dim=-1
    )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop box b_n out of each image x_n and resize it bilinearly to ``size``, in one grid_sample.

    images: x, (N, 3, H, W) uint8 or float in [0, 1].
    boxes: (N, 4) = (top, left, height, width) in pixels, floats allowed, inside the image.
    size: output side, or (height, width).

    For integer boxes this equals torchvision's ``resized_crop(..., antialias=True)``
    whenever the crop is not larger than the output (upsampling or identity,
    always the case for CIFAR crops resized to 32), because antialiasing then
    changes nothing. For crops larger than the output it equals
    ``antialias=False``: plain bilinear, no low-pass filter. The sampling grid is
    built directly rather than with ``F.affine_grid``, because interpolate
    clamps source positions to the crop's edge pixels, which an affine map
    cannot express.
    """
    x = _float_images(images)
    out_size = (size, size) if isinstance(size, int) else tuple(size)
    if len(out_size) != 2 or not all(isinstance(s, int) and s >= 1 for s in out_size):
        raise ValueError(f"size must be a positive int or a pair of them, got {size!r}; pass e.g. size=32")
    boxes = _check_boxes(boxes, x.shape[0], x.shape[2], x.shape[3])
    return _resized_crop(x, boxes, out_size)


def _per_image_view(values: torch.Tensor) -> torch.Tensor:
    """(N,) per-image values as (N, 1, 1, 1), to broadcast over an (N, C, H, W) batch."""
    return values.view(-1, 1, 1, 1)


def _select(mask: torch.Tensor, chosen: torch.Tensor, kept: torch.Tensor, out: torch.Tensor | None = None
            ) -> torch.Tensor:
    """``chosen`` where the bool or 0/1 float mask (broadcast against both) is 1, else ``kept``.

    torch.where, exactly (for finite values): a lerp with weight 1 returns its end and with
    weight 0 its start, bit for bit, and it is vectorised on the CPU, where torch.where is not
    (about 5x slower there). No op here waits for the device, unlike indexing with a mask.
    """
    return torch.lerp(kept, chosen, mask.to(kept.dtype), out=out)


def _float_mask(compare, a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """compare(a, b) (torch.eq, torch.ge, ...) as 1.0 / 0.0 in a's shape and dtype.

    Written as floats at once, which is 5x faster on the CPU than a bool mask converted.
    """
    return compare(a, b, out=torch.empty_like(a))


def _hflip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _select(_per_image_view(mask), x.flip(-1), x)


def hflip(images: torch.Tensor, flip_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror left-right the images x_n with flip_mask[n] True (all when None), as torchvision's horizontal_flip."""
    x = _float_images(images)
    return _hflip(x, _per_image_mask(flip_mask, x.shape[0], "flip_mask", x.device))


# --------------------------------------------------------------------------- colour


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma L = 0.2989 R + 0.587 G + 0.114 B, shape (N, 1, H, W)."""
    r, g, b = x.unbind(dim=1)
    luma = (r * GRAYSCALE_WEIGHTS[0]).add_(g, alpha=GRAYSCALE_WEIGHTS[1]).add_(b, alpha=GRAYSCALE_WEIGHTS[2])
    return luma.unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """clamp(f * x + (1 - f) * other, 0, 1) with one factor f per image."""
    return torch.lerp(other.expand_as(x), x, factors.view(-1, 1, 1, 1)).clamp_(0, 1)


def _brightness(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return (x * factors.view(-1, 1, 1, 1)).clamp_(0, 1)


def _device_constant(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """values as a 1-D tensor of like's dtype and device, filled there.

    torch.tensor(values, device=...) or like.new_tensor(values) would copy them from the host,
    and a blocking copy to a GPU first waits for the device to finish its queued work.
    """
    constant = like.new_empty(len(values))
    for index, value in enumerate(values):
        constant[index].fill_(value)
    return constant


def _mean_luma(x: torch.Tensor) -> torch.Tensor:
    """The mean of each image's luma L, shape (N,): L of the channel means, which is the same."""
    return x.mean(dim=(2, 3)) @ _device_constant(GRAYSCALE_WEIGHTS, x)


def _contrast(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return _blend(x, _per_image_view(_mean_luma(x)), factors)


def _saturation(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grayscale(x), factors)


# HSV -> RGB in closed form on the hue sextant d = 6 H in [0, 6): channel c is
# min + C * clamp(a_c * |d - m_c| + b_c, 0, 1), with chroma C = max - min = S * V.
_HUE_RAMP_SLOPE = (1.0, -1.0, -1.0)  # a_c for (R, G, B)
_HUE_RAMP_CENTRE = (3.0, 2.0, 4.0)  # m_c
_HUE_RAMP_OFFSET = (-1.0, 2.0, 2.0)  # b_c


def _hue(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate the hue H of every pixel of image n by shifts[n] turns (RGB -> HSV -> RGB, batched).

    Saturation S and value V are kept, as in torchvision's adjust_hue. The
    output lies in [0, 1]: min + C * ramp <= max for a ramp in [0, 1].
    """
    r, g, b = x.unbind(dim=1)
    high, low = x.amax(dim=1), x.amin(dim=1)
    chroma = high - low
    # Hue sextant (up to a multiple of 6) from the largest channel; ties go to R, then G.
    sextant = _select(_float_mask(torch.eq, high, g), (b - r).add_(chroma, alpha=2), (r - g).add_(chroma, alpha=4))
    sextant = _select(_float_mask(torch.eq, high, r), g - b, sextant)
    sextant.div_(chroma.clamp(min=torch.finfo(x.dtype).tiny)).add_(6 * shifts.view(-1, 1, 1))
    sextant -= sextant.div(6).floor_().mul_(6)  # wrap into [0, 6)
    ramp = torch.empty_like(x)
    for channel, (centre, slope, offset) in enumerate(zip(_HUE_RAMP_CENTRE, _HUE_RAMP_SLOPE, _HUE_RAMP_OFFSET)):
        torch.sub(sextant, centre, out=ramp[:, channel]).abs_().mul_(slope).add_(offset)
    return ramp.clamp_(0, 1).mul_(chroma.unsqueeze(1)).add_(low.unsqueeze(1))


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor | float) -> torch.Tensor:
    """x_n * f_n clamped to [0, 1]; f_n >= 0 per image (torchvision's adjust_brightness).

    One of the four adjustments of SimCLR's colour distortion (Chen et al., 2020).
    """
    x = _float_images(images)
    f = _per_image(factors, x.shape[0], "factors", x.device)
    _check_values(f, 0.0, math.inf, "brightness factors", "factors=torch.full((n,), 1.2)")
    return _brightness(x, f)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor | float) -> torch.Tensor:
    """Blend x_n with the mean of its grayscale image by f_n >= 0, clamped (torchvision's adjust_contrast)."""
    x = _float_images(images)
    f = _per_image(factors, x.shape[0], "factors", x.device)
    _check_values(f, 0.0, math.inf, "contrast factors", "factors=torch.full((n,), 1.2)")
    return _contrast(x, f)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor | float) -> torch.Tensor:
    """Blend x_n with its grayscale image by f_n >= 0, clamped (torchvision's adjust_saturation)."""
    x = _float_images(images)
    f = _per_image(factors, x.shape[0], "factors", x.device)
    _check_values(f, 0.0, math.inf, "saturation factors", "factors=torch.full((n,), 1.2)")
    return _saturation(x, f)


def adjust_hue(images: torch.Tensor, shifts: torch.Tensor | float) -> torch.Tensor:
    """Shift the hue of x_n by shifts[n] in [-0.5, 0.5] turns (torchvision's adjust_hue).

    The hue part of SimCLR's colour distortion (Chen et al., 2020); a turn of 1 is 360 degrees.
    """
    x = _float_images(images)
    s = _per_image(shifts, x.shape[0], "shifts", x.device)
    _check_values(s, -0.5, 0.5, "hue shifts", "shifts=torch.full((n,), 0.1)")
    return _hue(x, s)


def _to_grayscale(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _select(_per_image_view(mask), _grayscale(x), x)


def rgb_to_grayscale(images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Replace x_n (where mask[n], all when None) by its luma in all 3 channels (torchvision's weights).

    SimCLR's random grayscale (Chen et al., 2020).
    """
    x = _float_images(images)
    return _to_grayscale(x, _per_image_mask(mask, x.shape[0], "mask", x.device))


BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)  # the columns of the jitter factors, and the op codes


def _colour_jitter(
    x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, apply: torch.Tensor, enabled: Sequence[bool]
) -> torch.Tensor:
    """Apply the four adjustments to images with apply[n], in the per-image order order[n].

    factors: (N, 4) = brightness, contrast, saturation factors and hue shift;
    order: (N, 4) permutations of the column indices 0..3 of factors; enabled: which
    adjustments the recipe switches on (as torchvision, an adjustment of
    strength 0 is skipped). x must lie in [0, 1], as every view does.

    Every step runs on the whole batch with fixed shapes, so nothing waits for the
    device. Each image's four slots are laid on a timeline of 7 steps so that its hue
    falls on the middle step: slot s of an image with its hue in slot h is step
    s + 3 - h. The middle step is the hue of every image; each other step is one
    blend per image (``_blend_step``), none for an image with no slot there. So the
    hue, which costs several blends, runs once on the batch, not once per slot.
    """
    ops = torch.where(apply.unsqueeze(1), order, -1)  # the adjustment of each slot; -1: none
    for op in (op for op, on in enumerate(enabled) if not on):
        ops = ops.masked_fill(order == op, -1)
    if enabled[HUE]:
        hue_slot = (order == HUE).to(torch.uint8).argmax(dim=1, keepdim=True)
        slots = torch.arange(-3, 4, device=x.device) + hue_slot  # (N, 7): the slot of each step
    else:
        slots = torch.arange(4, device=x.device).expand(len(order), 4)
    on_timeline = (slots >= 0) & (slots < 4)
    steps = torch.where(on_timeline, ops.gather(1, slots.clamp(0, 3)), -1)
    out = None  # once a step has made a new batch, the later steps write over it
    for index, step in enumerate(steps.unbind(dim=1)):
        if enabled[HUE] and index == 3:
            x = _select(_per_image_view(step == HUE), _hue(x, factors[:, HUE]), x, out=out)
        elif any(enabled[:HUE]):
            x = _blend_step(x, step, factors, enabled, out=out)
        else:
            continue  # no blend is switched on
        out = x
    return x


def _blend_step(x: torch.Tensor, ops: torch.Tensor, factors: torch.Tensor, enabled: Sequence[bool],
                out: torch.Tensor | None = None) -> torch.Tensor:
    """Brightness, contrast or saturation, whichever ops[n] names, on each image, in one blend.

    All three are clamp(lerp(other, x, f), 0, 1), with other = 0 (brightness: x * f, bit for
    bit), the mean luma (contrast) or the luma image (saturation). An image with ops[n] = -1
    gets f = 1, which returns it unchanged (it already lies in [0, 1]). out: where to write
    (may be x).
    """
    weights = torch.where(ops >= 0, factors.gather(1, ops.clamp(min=0).unsqueeze(1)).squeeze(1), 1.0)
    other = x.new_zeros(())
    if enabled[CONTRAST]:
        other = _per_image_view(_mean_luma(x) * (ops == CONTRAST))
    if enabled[SATURATION]:
        other = _grayscale(x).mul_(_per_image_view(ops == SATURATION).to(x.dtype)).add_(other)
    return torch.lerp(other, x, _per_image_view(weights), out=out).clamp_(0, 1)


# --------------------------------------------------------------------------- blur, solarize


def _gaussian_kernels(sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels exp(-i^2 / (2 sigma_n^2)), i = -k//2 .. k//2, shape (N, k)."""
    offsets = torch.arange(kernel_size, device=sigmas.device, dtype=torch.float32) - kernel_size // 2
    return torch.softmax(-(offsets.square() / (2 * sigmas.square().unsqueeze(1))), dim=1)


def _gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor, kernel_size: int, mask: torch.Tensor) -> torch.Tensor:
    n, c, height, width = x.shape
    if n == 0:  # no planes to pad
        return x
    # The images left alone get the kernel (0, .., 0, 1, 0, .., 0), which returns them exactly.
    kernels = _gaussian_kernels(sigmas, kernel_size)
    identity = (torch.arange(kernel_size, device=x.device) == kernel_size // 2).to(kernels.dtype)
    kernels = torch.where(mask.unsqueeze(1), kernels, identity)
    # One depthwise conv for the whole batch: every (image, channel) is a group with its own kernel.
    kernels = kernels.unsqueeze(1).expand(n, c, kernel_size).reshape(n * c, kernel_size)
    pad = kernel_size // 2
    planes = F.pad(x.reshape(1, n * c, height, width), (pad, pad, pad, pad), mode="reflect")
    planes = F.conv2d(planes, kernels.view(n * c, 1, kernel_size, 1), groups=n * c)  # vertical pass
    planes = F.conv2d(planes, kernels.view(n * c, 1, 1, kernel_size), groups=n * c)  # horizontal pass
    return planes.view(n, c, height, width)


def gaussian_blur(
    images: torch.Tensor, sigmas: torch.Tensor | float, kernel_size: int, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Blur x_n (where mask[n], all when None) with an isotropic Gaussian of std sigmas[n] pixels.

    The blur of SimCLR's ImageNet views and BYOL's views (Grill et al., 2020).
    As torchvision's ``gaussian_blur``: a kernel_size x kernel_size kernel
    (odd), reflect padding. The separable kernel runs as two depthwise
    convolutions over the (1, N*3, H, W) batch, one kernel per image and channel.
    """
    x = _float_images(images)
    n, _, height, width = x.shape
    if not (isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 1):
        raise ValueError(f"kernel_size must be an odd positive int, got {kernel_size!r}; pass e.g. kernel_size=3")
    if kernel_size // 2 >= min(height, width):
        raise ValueError(
            f"kernel_size={kernel_size} is too large for {height}x{width} images (reflect padding needs "
            f"kernel_size // 2 < min(H, W)); pass a kernel_size below {2 * min(height, width)}"
        )
    s = _per_image(sigmas, n, "sigmas", x.device)
    if not bool((s > 0).all()):
        raise ValueError(
            f"sigmas must be > 0, got a minimum of {s.min().item():.4g}; pass e.g. sigmas=torch.full((n,), 1.0)"
        )
    return _gaussian_blur(x, s, kernel_size, _per_image_mask(mask, n, "mask", x.device))


def _solarize(x: torch.Tensor, threshold: float, mask: torch.Tensor) -> torch.Tensor:
    thresholds = torch.where(mask, threshold, math.inf)  # an image left alone has no pixel >= inf
    return _select(_float_mask(torch.ge, x, _per_image_view(thresholds)), 1 - x, x)


def solarize(images: torch.Tensor, threshold: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Invert (1 - x) the pixels >= threshold of x_n (where mask[n], all when None), as torchvision.

    BYOL's solarization (Grill et al., 2020), used on its second view x'.
    """
    x = _float_images(images)
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}; pass e.g. threshold=0.5")
    return _solarize(x, float(threshold), _per_image_mask(mask, x.shape[0], "mask", x.device))


# --------------------------------------------------------------------------- views


def augment(images: torch.Tensor, recipe: ViewRecipe, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view x̃_n = t_n(x_n) of every image, t_n drawn independently per image from ``recipe``.

    images: x, (N, 3, H, W) uint8 or float in [0, 1], on any device.
    recipe: the distribution of augmentations (see ``ViewRecipe``).
    generator: optional ``torch.Generator`` for reproducible views.
    Returns float32 (N, 3, S, S) in [0, 1] on the images' device, S = recipe.output_size.
    """
    _check_recipe(recipe)
    return _augment(_float_images(images), recipe, generator)


def _check_recipe(recipe: object) -> None:
    if not isinstance(recipe, ViewRecipe):
        raise ValueError(f"recipe must be a ViewRecipe, got {type(recipe).__name__}; pass e.g. simclr_cifar()")


class _ViewDraws(NamedTuple):
    """The random parameters of one view of every image, one row per image, on the images' device."""

    boxes: torch.Tensor
    flip: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor  # (N, 4): brightness, contrast, saturation factors, hue shift
    order: torch.Tensor  # (N, 4): the order of the four jitter adjustments
    gray: torch.Tensor
    blur: torch.Tensor
    sigmas: torch.Tensor
    solar: torch.Tensor

    def rows(self, start: int, stop: int) -> _ViewDraws:
        return _ViewDraws(*(values[start:stop] for values in self))


def _augment(x: torch.Tensor, recipe: ViewRecipe, generator: torch.Generator | None) -> torch.Tensor:
    """``augment`` on a validated float32 batch.

    Once every parameter is drawn, the CPU transforms the images in chunks of CPU_CHUNK_PIXELS
    output pixels: a chunk's intermediate tensors stay in the cache and their memory is reused,
    where whole-batch tensors are fresh pages at every op (1024 CIFAR views, one thread: 30% less CPU time).
    """
    n, _, height, width = x.shape
    device = x.device
    draw_on = _sampling_device(generator, device)

    boxes = sample_crop_boxes(n, height, width, recipe.crop_scale, recipe.crop_ratio, generator, draw_on)
    flip = _bernoulli(n, recipe.flip_p, generator, draw_on)
    jitter = _bernoulli(n, recipe.jitter_p, generator, draw_on)
    strengths = (recipe.brightness, recipe.contrast, recipe.saturation)
    factors = [_uniform(n, max(0.0, 1 - s), 1 + s, generator, draw_on) for s in strengths]
    factors.append(_uniform(n, -recipe.hue, recipe.hue, generator, draw_on))
    order = torch.rand(n, 4, generator=generator, device=draw_on).argsort(dim=1)
    gray = _bernoulli(n, recipe.grayscale_p, generator, draw_on)
    blur = _bernoulli(n, recipe.blur_p, generator, draw_on)
    sigmas = _uniform(n, recipe.blur_sigma[0], recipe.blur_sigma[1], generator, draw_on)
    solar = _bernoulli(n, recipe.solarize_p, generator, draw_on)
    # Drawn on a CPU generator for a GPU batch: a copy that does not wait for the device's queue
    draws = _ViewDraws(*(values.to(device, non_blocking=True) for values in
                         (boxes, flip, jitter, torch.stack(factors, dim=1), order, gray, blur, sigmas, solar)))
    chunk = max(1, CPU_CHUNK_PIXELS // recipe.output_size**2) if device.type == "cpu" else n
    if n <= chunk:
        return _transform(x, recipe, draws)
    return torch.cat([_transform(x[start:start + chunk], recipe, draws.rows(start, start + chunk))
                      for start in range(0, n, chunk)])


def _transform(x: torch.Tensor, recipe: ViewRecipe, draws: _ViewDraws) -> torch.Tensor:
    """One view of every image of x with its drawn parameters; no op waits for the device."""
    size = (recipe.output_size, recipe.output_size)
    x = _resized_crop(x, draws.boxes, size, draws.flip)  # crop, then flip
    enabled = (recipe.brightness > 0, recipe.contrast > 0, recipe.saturation > 0, recipe.hue > 0)
    if any(enabled) and recipe.jitter_p > 0:
        x = _colour_jitter(x, draws.factors, draws.order, draws.jitter, enabled)
    if recipe.grayscale_p > 0:
        x = _to_grayscale(x, draws.gray)
    if recipe.blur_p > 0:
        x = _gaussian_blur(x, draws.sigmas, recipe.blur_kernel_size, draws.blur)
    if recipe.solarize_p > 0:
        x = _solarize(x, recipe.solarize_threshold, draws.solar)
    return x


def make_views(
    images: torch.Tensor,
    recipe: ViewRecipe | Sequence[ViewRecipe],
    n_views: int = 2,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """``n_views`` independent views of every image, e.g. SimCLR's x̃_i, x̃_j or Barlow Twins' x^A, x^B.

    recipe: one ViewRecipe for all views, or a sequence of them, one per view
    (BYOL's asymmetric pair from ``byol_cifar()``); its length must equal n_views.
    Returns a list of n_views float32 tensors (N, 3, S, S); view v of image n is views[v][n].
    """
    if not (isinstance(n_views, int) and n_views >= 1):
        raise ValueError(f"n_views must be an int >= 1, got {n_views!r}; pass e.g. n_views=2")
    x = _float_images(images)
    if isinstance(recipe, ViewRecipe):
        # One recipe: augment all views as one batch of n_views * N images.
        views = _augment(x.repeat(n_views, 1, 1, 1), recipe, generator)
        return list(views.view(n_views, *x.shape[:2], recipe.output_size, recipe.output_size).unbind(0))
    if not isinstance(recipe, Sequence):
        raise ValueError(
            f"recipe must be a ViewRecipe or a sequence of them, got {type(recipe).__name__}; "
            "pass e.g. simclr_cifar() or byol_cifar()"
        )
    recipes = list(recipe)
    if len(recipes) != n_views:
        raise ValueError(
            f"got {len(recipes)} recipes but n_views={n_views}; pass n_views=len(recipes), or a single ViewRecipe"
        )
    for r in recipes:
        _check_recipe(r)
    return [_augment(x, r, generator) for r in recipes]
