import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from sslbook import data, paths


def write_folder(root, sizes_per_class, size=(32, 32), split="train"):
    for label, count in enumerate(sizes_per_class):
        folder = root / split / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(count):
            pixels = np.full((*size, 3), fill_value=10 * label + index, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SSLBOOK_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def image_folder(tmp_path):
    write_folder(tmp_path, [3, 4, 5], split="train")
    write_folder(tmp_path, [2, 2, 2], split="test")
    return tmp_path


def test_image_folder_loads_pixels_labels_and_classes(image_folder):
    train = data.load_dataset(root=image_folder)
    assert train.images.dtype == torch.uint8 and train.images.shape == (12, 3, 32, 32)
    assert train.classes == ["class0", "class1", "class2"]
    assert train.labels.tolist() == [0] * 3 + [1] * 4 + [2] * 5
    # each image is filled with 10 * label + index
    for image, label in zip(train.images, train.labels):
        assert (image == image.flatten()[0]).all()
        assert image.flatten()[0] // 10 == label
    assert len(data.load_dataset(split="test", root=image_folder)) == 6


def test_environment_variable_names_the_folder_and_argument_overrides(image_folder, tmp_path_factory, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(image_folder))
    assert len(data.load_dataset()) == 12
    other = tmp_path_factory.mktemp("other")
    write_folder(other, [1, 1], split="train")
    write_folder(other, [1, 1], split="test")
    assert len(data.load_dataset(root=other)) == 2


def test_empty_folder_and_missing_class_folders_say_how_to_fix(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders.*ImageFolder layout"):
        data.load_dataset(root=tmp_path)
    (tmp_path / "train" / "cat").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        data.load_dataset(root=tmp_path)


def test_wrong_and_mixed_image_sizes_are_rejected(tmp_path):
    write_folder(tmp_path, [2], size=(64, 64), split="train")
    write_folder(tmp_path, [2], size=(64, 64), split="test")
    with pytest.raises(ValueError, match="expected 32x32 images, got 64x64"):
        data.load_dataset(root=tmp_path)
    assert data.load_dataset(root=tmp_path, image_size=None).images.shape[-1] == 64
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "train" / "class0" / "small.png")
    with pytest.raises(ValueError, match="small.png is 16x16 but the first image was 64x64"):
        data.load_dataset(root=tmp_path, image_size=None)


def test_missing_cifar_without_network_gives_one_clear_message(tmp_path, monkeypatch):
    import torchvision

    class OfflineCIFAR10:
        def __init__(self, root, train, download):
            if download:
                raise urllib.error.URLError("no network")
            raise RuntimeError("Dataset not found or corrupted.")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", OfflineCIFAR10)
    with pytest.raises(FileNotFoundError, match="could not be downloaded.*SSLBOOK_DATA"):
        data.load_dataset("cifar10", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="download=False"):
        data.load_dataset("cifar10", root=tmp_path, download=False)


def test_bad_names_and_splits():
    with pytest.raises(ValueError, match="unknown data set"):
        data.load_dataset("imagenet")
    with pytest.raises(ValueError, match="split must be"):
        data.load_dataset(split="validation")


def test_balanced_subset_is_balanced_reproducible_and_checked():
    labels = torch.arange(10).repeat_interleave(30)
    index = torch.arange(300)
    images = torch.zeros(300, 3, 32, 32, dtype=torch.uint8)
    images[:, 0], images[:, 1] = (index // 256).view(-1, 1, 1), (index % 256).view(-1, 1, 1)
    full = data.ImageData(images, labels, [str(i) for i in range(10)])
    first = data.balanced_subset(full, 7, seed=1)
    assert torch.bincount(first.labels, minlength=10).tolist() == [7] * 10
    assert torch.equal(first.images, data.balanced_subset(full, 7, seed=1).images)
    assert not torch.equal(first.images, data.balanced_subset(full, 7, seed=2).images)
    # image i carries its index i in two channels, and its label is i // 30
    source_index = first.images[:, 0, 0, 0].long() * 256 + first.images[:, 1, 0, 0].long()
    assert torch.equal(source_index // 30, first.labels)
    assert len(set(source_index.tolist())) == 70
    with pytest.raises(ValueError, match="fewer than the 31 asked for"):
        data.balanced_subset(full, 31)


def test_check_images_rejects_floats():
    with pytest.raises(ValueError, match="expected uint8 images"):
        data.check_images(torch.rand(2, 3, 32, 32))


def test_a_folder_is_decoded_once_and_again_when_a_file_changes(image_folder, monkeypatch):
    first = data.load_dataset(root=image_folder)
    decoded = list(paths.cache_dir().glob("images-train-*.pt"))
    assert len(decoded) == 1

    def not_called(folder):
        raise AssertionError("the decoded copy should have been read")

    monkeypatch.setattr(data, "load_image_folder", not_called)
    again = data.load_dataset(root=image_folder)
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert again.classes == first.classes
    monkeypatch.undo()
    monkeypatch.setenv("SSLBOOK_CACHE", str(decoded[0].parent))
    changed = image_folder / "train" / "class0" / "0.png"
    Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8)).save(changed)
    assert (data.load_dataset(root=image_folder).images[0] == 200).all()
