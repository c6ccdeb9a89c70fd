"""The small convolutional autoencoder of the denoising autoencoder and the Context Encoder, and its
encoder as the features a method is evaluated on.
"""
from __future__ import annotations

from torch import Tensor, nn

from .checks import check_float_images
from .networks import Normalize, conv_bn_relu


def _conv_up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvAutoencoder(nn.Module):
    """Small convolutional autoencoder for the denoising autoencoder and the Context Encoder.

    `encoder`: CIFAR normalisation, then three stride-2 3x3 convolutions with
    batch norm and ReLU, 3 -> c -> 2c -> 4c channels (c = base_channels = 32),
    taking 32x32 to a 4x4 code. `decoder`: three stride-2 transposed
    convolutions back to 3x32x32 with a sigmoid, so reconstructions lie in
    [0, 1] like the targets. Any H, W divisible by 8 work.

    `features(images)` global-average-pools the code into the (N, 4c) vector
    used for evaluation; `feature_dim` is 4c (128 by default).
    """

    def __init__(self, base_channels: int = 32) -> None:
        super().__init__()
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}; pass 32")
        c = base_channels
        self.feature_dim = 4 * c
        self.encoder = nn.Sequential(
            Normalize(),
            conv_bn_relu(3, c, stride=2),
            conv_bn_relu(c, 2 * c, stride=2),
            conv_bn_relu(2 * c, 4 * c, stride=2),
        )
        self.decoder = nn.Sequential(
            _conv_up(4 * c, 2 * c),
            _conv_up(2 * c, c),
            nn.ConvTranspose2d(c, 3, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def encode(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1] -> code (N, 4c, H/8, W/8)."""
        check_float_images(images)
        if images.shape[-2] % 8 or images.shape[-1] % 8:
            raise ValueError(
                f"ConvAutoencoder needs H and W divisible by 8, got {tuple(images.shape[-2:])}; "
                "resize or crop to 32x32"
            )
        return self.encoder(images)

    def features(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1] -> pooled features (N, feature_dim)."""
        return self.encode(images).mean(dim=(2, 3))

    def forward(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1] -> reconstruction (N, 3, H, W) in [0, 1]."""
        return self.decoder(self.encode(images))


class AutoencoderFeatures(nn.Module):
    """The encoder f_theta of a `ConvAutoencoder` as an evaluation encoder.

    Takes float images in [0, 1] (N, 3, H, W) and returns the globally pooled
    code (N, feature_dim), `ConvAutoencoder.features`. It holds the autoencoder
    itself, so training the method trains these features.
    """

    def __init__(self, autoencoder: ConvAutoencoder) -> None:
        super().__init__()
        if not isinstance(autoencoder, ConvAutoencoder):
            raise ValueError(
                f"autoencoder must be a sslbook.autoencoder.ConvAutoencoder, got {type(autoencoder).__name__}; "
                "build one with ConvAutoencoder(base_channels=32)"
            )
        self.autoencoder = autoencoder
        self.feature_dim = autoencoder.feature_dim

    def forward(self, images: Tensor) -> Tensor:
        return self.autoencoder.features(images)
