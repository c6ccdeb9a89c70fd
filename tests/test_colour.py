"""Tests of the sRGB <-> CIE Lab conversion against published values and a scalar implementation."""

import itertools

import pytest
import torch

from sslbook.colour import lab_to_rgb, rgb_to_lab


def scalar_srgb_to_lab(r: float, g: float, b: float) -> tuple[float, float, float]:
    """Textbook sRGB (D65) -> CIE Lab for one colour, in plain Python."""

    def linearise(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    rl, gl, bl = linearise(r), linearise(g), linearise(b)
    x = 0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl
    y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl
    z = 0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl

    def f(t: float) -> float:
        epsilon, kappa = 216 / 24389, 24389 / 27
        return t ** (1 / 3) if t > epsilon else (kappa * t + 16) / 116

    fx, fy, fz = f(x / 0.95047), f(y / 1.0), f(z / 1.08883)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


# ---------------------------------------------------------------------------
# Colorization: sRGB <-> Lab.
# ---------------------------------------------------------------------------

# Published sRGB (D65) -> CIE Lab values (e.g. B. Lindbloom's calculator).
REFERENCE_LAB = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),
    ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
    ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
]


def colours_as_images(colours: list[tuple[float, float, float]], dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(colours, dtype=dtype).T.reshape(1, 3, len(colours), 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgb_to_lab_matches_published_values(dtype):
    lab = rgb_to_lab(colours_as_images([rgb for rgb, _ in REFERENCE_LAB], dtype))
    expected = torch.tensor([lab for _, lab in REFERENCE_LAB], dtype=dtype).T.reshape(1, 3, -1, 1)
    assert torch.allclose(lab, expected, atol=0.01)


def test_rgb_to_lab_matches_a_scalar_implementation():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    images[0, :, 0, 0] = torch.tensor([0.01, 0.02, 0.03])  # the linear segments of companding and f
    lab = rgb_to_lab(images)
    for n, row, col in itertools.product(range(2), range(4), range(5)):
        expected = scalar_srgb_to_lab(*images[n, :, row, col].tolist())
        assert lab[n, :, row, col].tolist() == pytest.approx(expected, abs=1e-9)


def test_lab_round_trip_in_float64():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    images[0, :, 0, :3] = torch.tensor([[0.0, 0.001, 1.0]] * 3)
    lab = rgb_to_lab(images)
    assert (lab_to_rgb(lab) - images).abs().max() < 1e-5
    assert (rgb_to_lab(lab_to_rgb(lab)) - lab).abs().max() < 1e-5


def test_lab_rejects_non_rgb_images():
    message = r"rgb_to_lab needs RGB images with 3 channels, got 1; convert grayscale with x.expand\(-1, 3, -1, -1\)"
    with pytest.raises(ValueError, match=message):
        rgb_to_lab(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="lab_to_rgb needs"):
        lab_to_rgb(torch.rand(2, 4, 4, 4))
