"""Colour spaces: exact sRGB (D65) <-> CIE L*a*b*, and the surface of the sRGB cube.

Colorization (Zhang et al. 2016) predicts the ab channels of Lab from its lightness L, and CMC
(Tian et al. 2019) takes L and ab as two views of an image; both convert with this module.
"""
from __future__ import annotations

import itertools

import torch

SRGB_TO_XYZ_D65 = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=torch.float64,
)
"""Linear sRGB -> CIE XYZ matrix for the D65 white (IEC 61966-2-1, as tabulated by B. Lindbloom)."""

XYZ_TO_SRGB_D65 = torch.linalg.inv(SRGB_TO_XYZ_D65)
"""Its exact inverse, so that lab_to_rgb(rgb_to_lab(x)) == x up to rounding."""

D65_WHITE = (0.95047, 1.0, 1.08883)
"""Reference white (X_n, Y_n, Z_n) of D65 with Y_n = 1."""

_LAB_DELTA = 6 / 29  # f(t) is linear below t = delta^3 = epsilon
_LAB_EPSILON = _LAB_DELTA**3  # 216/24389
_LAB_KAPPA = (29 / 3) ** 3  # 24389/27: L = kappa * Y/Y_n below epsilon
_SRGB_THRESHOLD = 0.04045  # companded value where sRGB switches from linear to gamma
_SRGB_LINEAR_THRESHOLD = _SRGB_THRESHOLD / 12.92


def _check_colour_images(images: torch.Tensor, function: str) -> None:
    if images.ndim < 3 or images.shape[-3] != 3:
        channels = images.shape[-3] if images.ndim >= 3 else "no channel dimension"
        raise ValueError(
            f"{function} needs RGB images with 3 channels, got {channels}; "
            "convert grayscale with x.expand(-1, 3, -1, -1)"
        )
    if not images.is_floating_point():
        raise ValueError(f"{function} needs float images in [0, 1], got dtype {images.dtype}; "
                         "convert uint8 images with sslbook.checks.unit_float(x)")


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    """f(t) = t^(1/3) above epsilon, (kappa t + 16) / 116 below (continuous at epsilon)."""
    return torch.where(t > _LAB_EPSILON, t.clamp_min(_LAB_EPSILON).pow(1 / 3), (_LAB_KAPPA * t + 16) / 116)


def _lab_f_inverse(u: torch.Tensor) -> torch.Tensor:
    return torch.where(u > _LAB_DELTA, u.pow(3), (116 * u - 16) / _LAB_KAPPA)


def _matrix(matrix: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", matrix.to(images.device, images.dtype), images)


def _white(images: torch.Tensor) -> torch.Tensor:
    return torch.tensor(D65_WHITE, device=images.device, dtype=images.dtype).reshape(3, 1, 1)


def rgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """Exact sRGB (D65) -> CIE L*a*b* conversion, the colour space of Zhang et al. (2016).

    1. sRGB companding undone: c_lin = c / 12.92 for c <= 0.04045, else ((c + 0.055) / 1.055)^2.4.
    2. XYZ = M c_lin with M = SRGB_TO_XYZ_D65.
    3. L = 116 f(Y/Y_n) - 16, a = 500 (f(X/X_n) - f(Y/Y_n)), b = 200 (f(Y/Y_n) - f(Z/Z_n)),
       with white (X_n, Y_n, Z_n) = (0.95047, 1.0, 1.08883), f(t) = t^(1/3) for
       t > epsilon = (6/29)^3 and f(t) = (kappa t + 16) / 116 with kappa = (29/3)^3 otherwise.

    Args:
        images: x, float (..., 3, H, W) sRGB values in [0, 1].

    Returns:
        lab (..., 3, H, W): L in [0, 100], a and b roughly in [-128, 128].
    """
    _check_colour_images(images, "rgb_to_lab")
    linear = torch.where(
        images <= _SRGB_THRESHOLD,
        images / 12.92,
        ((images.clamp_min(_SRGB_THRESHOLD) + 0.055) / 1.055).pow(2.4),
    )
    xyz = _matrix(SRGB_TO_XYZ_D65, linear) / _white(images)
    fx, fy, fz = _lab_f(xyz).unbind(-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* -> sRGB (D65), the exact inverse of ``rgb_to_lab``.

    Lab colours outside the sRGB gamut come back with values outside [0, 1]
    (the companding is extended as an odd function); clamp them yourself for display.

    Args:
        lab: float (..., 3, H, W) with channels L, a, b.

    Returns:
        images (..., 3, H, W) in sRGB.
    """
    _check_colour_images(lab, "lab_to_rgb")
    lightness, a, b = lab.unbind(-3)
    fy = (lightness + 16) / 116
    f_xyz = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-3)
    xyz = _lab_f_inverse(f_xyz) * _white(lab)
    linear = _matrix(XYZ_TO_SRGB_D65, xyz)
    magnitude = linear.abs()
    companded = torch.where(
        magnitude <= _SRGB_LINEAR_THRESHOLD,
        12.92 * magnitude,
        1.055 * magnitude.clamp_min(_SRGB_LINEAR_THRESHOLD).pow(1 / 2.4) - 0.055,
    )
    return torch.sign(linear) * companded


def srgb_cube_surface(samples_per_edge: int) -> torch.Tensor:
    """Colours (3, M, 1) on the surface of the sRGB cube, in float64.

    A grid of samples_per_edge^2 colours on each of the six faces, plus
    samples_per_edge^2 colours along each of the twelve edges, where most of the
    outline of the gamut's projection onto the ab plane lies.
    """
    values = torch.linspace(0, 1, samples_per_edge, dtype=torch.float64)
    first, second = (v.flatten() for v in torch.meshgrid(values, values, indexing="ij"))
    along_edge = torch.linspace(0, 1, samples_per_edge**2, dtype=torch.float64)
    pieces = []
    for fixed_channel in range(3):
        for fixed_value in (0.0, 1.0):
            free = [first, second]
            face = [free.pop(0) if c != fixed_channel else torch.full_like(first, fixed_value) for c in range(3)]
            pieces.append(torch.stack(face))
    for free_channel in range(3):
        for corner in itertools.product((0.0, 1.0), repeat=2):
            fixed = list(corner)
            edge = [along_edge if c == free_channel else torch.full_like(along_edge, fixed.pop(0)) for c in range(3)]
            pieces.append(torch.stack(edge))
    return torch.cat(pieces, dim=1).unsqueeze(-1)
