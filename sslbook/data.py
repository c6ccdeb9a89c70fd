"""Image data as uint8 tensors: CIFAR-10/100 through torchvision, or any ImageFolder.

Where the data lives, in order of precedence: the ``root`` argument, the
environment variable ``SSLBOOK_DATA``, then ``~/.cache/sslbook``. A root that
holds ``train/<class>/*.png`` and ``test/<class>/*.png`` (torchvision's
ImageFolder layout) is read as a folder; otherwise CIFAR is read, or downloaded
when a network is there, with torchvision's own dataset classes.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DATA_ENV = "SSLBOOK_DATA"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")
HOW_TO_PROVIDE = (
    f"To provide the data offline, either set {DATA_ENV} to a folder in ImageFolder "
    "layout (train/<class>/*.png and test/<class>/*.png), or put torchvision's "
    "CIFAR archive (cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) "
    f"in the folder named by {DATA_ENV}."
)


@dataclass
class ImageData:
    """A labelled image set held in memory.

    images: uint8 tensor (N, 3, H, W); labels: int64 tensor (N,); classes: class names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> "ImageData":
        return ImageData(self.images[indices], self.labels[indices], self.classes)

    def to(self, device: torch.device | str) -> "ImageData":
        return ImageData(self.images.to(device), self.labels.to(device), self.classes)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$SSLBOOK_DATA``, else ``~/.cache/sslbook``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "sslbook"


def is_image_folder(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def load_dataset(
    name: str = "cifar10",
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = True,
    image_size: int | None = 32,
) -> ImageData:
    """Load a split of CIFAR-10, CIFAR-100 or an ImageFolder tree into memory.

    name: "cifar10", "cifar100" or "folder". When the root holds an ImageFolder
    tree (train/ and test/), it is read whatever the name, so that
    ``SSLBOOK_DATA`` can point at any CIFAR-like folder. Images must be
    ``image_size`` pixels square (None accepts any single size).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name not in ("cifar10", "cifar100", "folder"):
        raise ValueError(f"unknown data set {name!r}; use 'cifar10', 'cifar100' or 'folder'")
    folder = data_root(root)
    if is_image_folder(folder):
        data = load_image_folder_once(folder / split)
    elif name == "folder":
        raise FileNotFoundError(
            f"{folder} is not in ImageFolder layout: it needs the subfolders train/ and test/, "
            f"each with one folder of images per class. {HOW_TO_PROVIDE}"
        )
    else:
        data = _load_cifar(name, split, folder, download)
    check_images(data.images, image_size)
    return data


def _load_cifar(name: str, split: str, folder: Path, download: bool) -> ImageData:
    import torchvision

    dataset_class = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        dataset = dataset_class(str(folder), train=split == "train", download=False)
    except RuntimeError:
        if not download:
            raise FileNotFoundError(
                f"{name} was not found in {folder} and download=False. {HOW_TO_PROVIDE}"
            ) from None
        try:
            dataset = dataset_class(str(folder), train=split == "train", download=True)
        except Exception as error:  # no network, a proxy, a full disk...
            raise FileNotFoundError(
                f"{name} is not in {folder} and could not be downloaded ({type(error).__name__}: "
                f"{error}). {HOW_TO_PROVIDE}"
            ) from None
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return ImageData(images, labels, list(dataset.classes))


def load_image_folder_once(split_folder: str | os.PathLike) -> ImageData:
    """``load_image_folder``, decoded once: the tensors are kept in the user's cache folder
    (``paths.cache_dir``) under a digest of the folder and every file's path, size and modification
    time, so each chapter does not decode the PNGs again."""
    from .paths import cache_dir
    from .train import save_atomically

    folder = Path(split_folder)
    if not folder.is_dir():
        return load_image_folder(folder)  # its error says how to provide the data
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for path in sorted(folder.glob("*/*")):
        status = path.stat()
        digest.update(f"{path.relative_to(folder)} {status.st_size} {status.st_mtime_ns}\n".encode())
    saved = cache_dir() / f"images-{folder.name}-{digest.hexdigest()[:16]}.pt"
    if saved.exists():
        state = torch.load(saved, weights_only=True)
        return ImageData(state["images"], state["labels"], list(state["classes"]))
    data = load_image_folder(folder)
    save_atomically({"images": data.images, "labels": data.labels, "classes": data.classes}, saved)
    return data


def load_image_folder(split_folder: str | os.PathLike) -> ImageData:
    """Read ``split_folder/<class>/<image>`` into memory (classes sorted by name)."""
    folder = Path(split_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}. {HOW_TO_PROVIDE}")
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    if not classes:
        raise FileNotFoundError(
            f"{folder} has no class folders: expected {folder}/<class>/<image>.png. {HOW_TO_PROVIDE}"
        )
    arrays, labels, expected_shape = [], [], None
    for label, class_name in enumerate(classes):
        files = sorted(p for p in (folder / class_name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise FileNotFoundError(
                f"class folder {folder / class_name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "remove the folder or add its images"
            )
        for path in files:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
            if expected_shape is None:
                expected_shape = array.shape
            elif array.shape != expected_shape:
                raise ValueError(
                    f"{path} is {array.shape[1]}x{array.shape[0]} but the first image was "
                    f"{expected_shape[1]}x{expected_shape[0]}; resize all images to one size "
                    "(32x32 for CIFAR-scale chapters) before loading"
                )
            arrays.append(array)
            labels.append(label)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageData(images, torch.tensor(labels, dtype=torch.int64), classes)


def balanced_subset(data: ImageData, per_class: int, seed: int = 0) -> ImageData:
    """Draw ``per_class`` images of every class at random (reproducible by ``seed``)."""
    return data.subset(balanced_indices(data.labels, data.classes, per_class, seed).to(data.labels.device))


def balanced_indices(labels: torch.Tensor, classes: list[str], per_class: int, seed: int = 0) -> torch.Tensor:
    """The indices of ``per_class`` images of every class drawn at random (reproducible by ``seed``),
    in a random order."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(len(classes)):
        members = torch.nonzero(labels.cpu() == label).flatten()
        if len(members) < per_class:
            raise ValueError(
                f"class {classes[label]!r} has {len(members)} images, fewer than the "
                f"{per_class} asked for; lower per_class to at most {len(members)} or use more data"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    indices = torch.cat(chosen)
    return indices[torch.randperm(len(indices), generator=generator)]


def check_images(images: torch.Tensor, size: int | None = 32) -> None:
    """Raise a clear error unless ``images`` is a uint8 (N, 3, size, size) batch."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images of shape (N, 3, H, W), got {images.dtype} {tuple(images.shape)}; "
            "load images with sslbook.data.load_dataset"
        )
    if size is not None and images.shape[-2:] != (size, size):
        raise ValueError(
            f"expected {size}x{size} images, got {images.shape[-2]}x{images.shape[-1]}; "
            f"resize them to {size}x{size} (CIFAR scale) first"
        )
