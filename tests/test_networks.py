import pytest
import torch

from sslbook import networks


@pytest.mark.parametrize("backbone,dim", [("small_cnn", 256), ("resnet18", 512)])
def test_backbones_map_images_to_feature_vectors(backbone, dim):
    encoder = networks.make_encoder(backbone)
    assert encoder.feature_dim == dim
    assert encoder(torch.rand(2, 3, 32, 32)).shape == (2, dim)
    maps = encoder.forward_stages(torch.rand(2, 3, 32, 32))
    assert len(maps) == 4 and maps[-1].shape[1] == dim


def test_resnet_keeps_cifar_resolution_in_the_stem():
    encoder = networks.resnet18_cifar()
    assert encoder.stem[0].kernel_size == (3, 3) and encoder.stem[0].stride == (1, 1)
    assert encoder.forward_stages(torch.rand(1, 3, 32, 32))[0].shape[-1] == 32  # no max-pool


def test_normalize_uses_cifar_statistics():
    mean = torch.tensor(networks.CIFAR_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert torch.allclose(networks.Normalize()(mean), torch.zeros(1, 3, 4, 4), atol=1e-6)


def test_projection_heads():
    head = networks.projection_mlp(16, 32, 8, n_layers=3)
    assert sum(isinstance(m, torch.nn.Linear) for m in head) == 3
    assert head(torch.randn(4, 16)).shape == (4, 8)
    with pytest.raises(ValueError, match="n_layers must be at least 1"):
        networks.projection_mlp(16, 32, 8, n_layers=0)
    with pytest.raises(ValueError, match="unknown backbone"):
        networks.make_encoder("vgg")
