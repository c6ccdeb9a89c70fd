"""Encoders, heads and the Context Encoder's discriminator. Every network takes float images in [0, 1]
and normalises them itself."""
from __future__ import annotations

import torch
from torch import nn

from .checks import check_float_images

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Subtract the CIFAR-10 channel mean and divide by its standard deviation."""

    def __init__(self, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """A four-stage CNN that trains in minutes on a laptop CPU.

    32x32 -> 16x16 -> 8x8 -> 4x4, then global average pooling to ``feature_dim``.
    ``stages`` exposes the blocks so that chapters can probe features per block.
    """

    def __init__(self, width: int = 32, feature_dim: int = 256, in_channels: int = 3):
        super().__init__()
        self.normalize = Normalize() if in_channels == 3 else nn.Identity()
        self.stages = nn.ModuleList([
            conv_bn_relu(in_channels, width),
            nn.Sequential(conv_bn_relu(width, 2 * width, stride=2), conv_bn_relu(2 * width, 2 * width)),
            nn.Sequential(conv_bn_relu(2 * width, 4 * width, stride=2), conv_bn_relu(4 * width, 4 * width)),
            nn.Sequential(conv_bn_relu(4 * width, feature_dim, stride=2)),
        ])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = feature_dim

    def forward_stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The feature map after every stage (for per-block probing)."""
        maps, x = [], self.normalize(images)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)
        for stage in self.stages:
            x = stage(x)
        return self.pool(x)


class ResNetEncoder(nn.Module):
    """torchvision's ResNet-18 adapted to 32x32 images: 3x3 stem, stride 1, no max-pool."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        import torchvision

        resnet = torchvision.models.resnet18(weights=None)
        resnet.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.normalize = Normalize() if in_channels == 3 else nn.Identity()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu)
        self.stages = nn.ModuleList([resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = 512

    def forward_stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps, x = [], self.stem(self.normalize(images))
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_stages(images)[-1])


def resnet18_cifar(in_channels: int = 3) -> ResNetEncoder:
    return ResNetEncoder(in_channels)


BACKBONES = {"small_cnn": SmallCNN, "resnet18": resnet18_cifar}


def make_encoder(backbone: str, **kwargs) -> nn.Module:
    """Build an encoder by name: "small_cnn" (CPU) or "resnet18" (GPU)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[backbone](**kwargs)


def projection_mlp(in_dim: int, hidden_dim: int, out_dim: int, n_layers: int = 2) -> nn.Sequential:
    """The MLP head g(.) of SimCLR: (Linear, BN, ReLU) x (n_layers - 1), then Linear.

    ``n_layers=3`` gives SimCLRv2's deeper head.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(n_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class ContextDiscriminator(nn.Module):
    """Small DCGAN-style discriminator D for the Context Encoder's adversarial loss.

    Pathak et al. (2016) add a GAN term so the inpainting looks sharp instead of
    the blurry mean that L2 alone produces. D sees either a real region of x or
    the network's prediction for it: a full 32x32 image or the 16x16 centre
    crop (any side >= 8 works). Three stride-2 4x4 convolutions with LeakyReLU
    (0.2), batch norm after the second and third, then global average pooling
    and a linear layer to one logit.
    """

    def __init__(self, base_channels: int = 32) -> None:
        super().__init__()
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}; pass 32")
        c = base_channels
        self.net = nn.Sequential(
            Normalize(),
            nn.Conv2d(3, c, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1),
            nn.BatchNorm2d(4 * c),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * c, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [0, 1], H, W >= 8 -> logits (N,) of "real"."""
        check_float_images(images)
        if min(images.shape[-2:]) < 8:
            raise ValueError(
                f"ContextDiscriminator needs images of side >= 8, got {tuple(images.shape[-2:])}; "
                "pass the full image or a larger crop"
            )
        return self.net(images).squeeze(1)
