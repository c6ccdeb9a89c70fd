"""The book's methods, found from their modules: every module of ``sslbook.methods`` with an ``ENTRY``.

A method's entry (``sslbook.runs.MethodEntry``) lives in the method's own module, beside its class:
its settings in each profile, how to build it, its title, family and chapter. Nothing here lists
the methods by hand; ``METHODS`` holds them in the book's order.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import methods as _methods_package
from .augment import ViewRecipe, simclr_cifar
from .data import ImageData
from .profiles import Profile
from .runs import MethodEntry

FAMILIES = ("pretext tasks", "contrastive", "generative", "reference")  # the book's parts, then the reference


@dataclass(frozen=True)
class MethodSpec:
    build: Callable[[Profile, ImageData], nn.Module]  # (profile, training set) -> method
    quick_epochs: int
    summary: str
    title: str
    family: str
    chapter: str
    config_overrides: Callable[[Profile], dict] = lambda profile: {}


def _quick_or_full(profile: Profile, quick, full):
    return quick if profile.name == "quick" else full


def _backbone(profile: Profile, in_channels: int) -> nn.Module:
    """The profile's encoder for images of ``in_channels`` channels (L, or ab, of Lab)."""
    from .networks import make_encoder

    return make_encoder(profile.backbone, **{**profile.backbone_options, "in_channels": in_channels})


def _align_uniform(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.contrastive_variants import AlignUniform

    return AlignUniform(profile.encoder(), projection_dim=128, hidden_dim=_quick_or_full(profile, 256, 512),
                        recipe=simclr_cifar(), alpha=2, t=2, uniformity_weight=1.0)


def _debiased(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.contrastive_variants import DebiasedSimCLR

    return DebiasedSimCLR(profile.encoder(), projection_dim=128, hidden_dim=_quick_or_full(profile, 256, 512),
                          temperature=0.5, tau_plus=0.1, recipe=simclr_cifar())


def _hard_negatives(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.contrastive_variants import HardNegativeSimCLR

    return HardNegativeSimCLR(profile.encoder(), projection_dim=128, hidden_dim=_quick_or_full(profile, 256, 512),
                              temperature=0.5, tau_plus=0.1, beta=1.0, recipe=simclr_cifar())


def _byol(profile: Profile, train_data: ImageData) -> nn.Module:
    from .augment import byol_cifar
    from .methods.byol import BYOL

    return BYOL(profile.encoder(), projection_dim=_quick_or_full(profile, 128, 256),
                hidden_dim=_quick_or_full(profile, 256, 4096), tau_base=0.99, recipes=byol_cifar())


def _invaspread(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.invaspread import InvaSpread, invaspread_cifar

    return InvaSpread(profile.encoder(), embedding_dim=128, temperature=0.1, recipe=invaspread_cifar())


def _simclr_v2(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.simclr_v2 import SimCLRv2

    return SimCLRv2(profile.encoder(), projection_dim=128, hidden_dim=_quick_or_full(profile, 256, 2048),
                    temperature=0.5, recipe=simclr_cifar())


def _barlow_twins(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.barlow_twins import BarlowTwins

    projection_dim = _quick_or_full(profile, 512, 2048)
    return BarlowTwins(profile.encoder(), projection_dim=projection_dim, hidden_dim=projection_dim,
                       lambd=_quick_or_full(profile, 0.02, 5e-3), recipe=simclr_cifar())


def _instdisc(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.instdisc import InstDisc, instdisc_cifar

    return InstDisc(profile.encoder(), n_data=len(train_data), embedding_dim=128, n_noise=4096, temperature=0.2,
                    momentum=0.5, proximal_weight=10.0, recipe=instdisc_cifar())


def _cmc(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.cmc import CMC, cmc_cifar

    return CMC(_backbone(profile, in_channels=1), _backbone(profile, in_channels=2), embedding_dim=128,
               temperature=0.1, recipe=cmc_cifar())


def _cpc_v2(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.cpc_v2 import CPCv2

    whole_image = ViewRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_p=0.0, grayscale_p=0.0)
    every_patch = ViewRecipe(output_size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.8,
                             grayscale_p=0.25)
    return CPCv2(profile.encoder(), context_dim=_quick_or_full(profile, 64, 256),
                 n_context_blocks=_quick_or_full(profile, 1, 2), prediction_steps=(2, 3, 4),
                 n_candidates=_quick_or_full(profile, 128, 256), directions=("down", "up", "right", "left"),
                 recipe=whole_image, patch_recipe=every_patch)


def _cpc_v2_config(profile: Profile) -> dict:
    return _quick_or_full(profile, dict(batch_size=32, lr=5e-3),
                          dict(optimizer="adamw", lr=1e-3, weight_decay=1e-4))  # CPC v2 trains with Adam


def _rotation(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.rotation import RotationPrediction

    return RotationPrediction(profile.encoder())


def _jigsaw(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.jigsaw import JigsawPuzzle
    from .pretext import make_permutation_set

    return JigsawPuzzle(profile.encoder(), make_permutation_set(100), hidden_dim=512)


def _context_prediction(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.context_prediction import ContextPrediction

    return ContextPrediction(profile.encoder(), hidden_dim=512, patch_size=8, gap=2, jitter=1, pairs_per_image=4)


def _colorization(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.colorization import Colorization, ab_bin_counts
    from .pretext import ab_bin_centres, rebalancing_weights

    centres = ab_bin_centres(step=10.0)
    weights = rebalancing_weights(ab_bin_counts(train_data.images, centres, step=10.0), lam=0.5, centres=centres,
                                  sigma=5.0)  # rare colours of the training set weigh more
    return Colorization(_backbone(profile, in_channels=1), centres, weights, target_size=8,
                        hidden_dim=_quick_or_full(profile, 64, 256),
                        recipe=ViewRecipe(crop_scale=(0.6, 1.0), jitter_p=0.0, grayscale_p=0.0))


def _counting(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.counting import Counting

    return Counting(profile.encoder(), n_counts=1000, margin=10.0,
                    recipe=ViewRecipe(crop_scale=(0.6, 1.0), jitter_p=0.0, grayscale_p=0.0))


def _exemplar_cnn(profile: Profile, train_data: ImageData) -> nn.Module:
    from .methods.exemplar_cnn import ExemplarCNN, exemplar_cifar, sample_seed_patches

    seed_patches, _, _ = sample_seed_patches(train_data.images.float() / 255, _quick_or_full(profile, 128, 8000),
                                             patch_size=24, generator=torch.Generator().manual_seed(0))
    return ExemplarCNN(profile.encoder(), (seed_patches * 255).round().to(torch.uint8), exemplar_cifar())


def _dae(profile: Profile, train_data: ImageData) -> nn.Module:
    from .generative import ConvAutoencoder
    from .methods.dae import DenoisingAutoencoder

    return DenoisingAutoencoder(ConvAutoencoder(base_channels=_quick_or_full(profile, 32, 64)), corruption="masking",
                                level=0.75)


def _context_encoder(profile: Profile, train_data: ImageData) -> nn.Module:
    from .generative import ConvAutoencoder
    from .methods.context_encoder import ContextEncoder

    return ContextEncoder(ConvAutoencoder(base_channels=_quick_or_full(profile, 32, 64)), mask_kind="centre",
                          overlap_weight=10.0)


def _autoencoder_config(profile: Profile) -> dict:
    """The full-profile training of the denoising autoencoder and the Context Encoder chapters."""
    return _quick_or_full(profile, {}, dict(epochs=100, optimizer="adamw", lr=1e-3, weight_decay=1e-4,
                                            warmup_epochs=5))


def _mae(profile: Profile, train_data: ImageData) -> nn.Module:
    from .generative import TinyViT
    from .methods.mae import MaskedAutoencoder

    vit_options = _quick_or_full(profile, dict(embed_dim=96, depth=3, num_heads=4),
                                 dict(embed_dim=192, depth=6, num_heads=6))
    decoder_options = _quick_or_full(profile, dict(decoder_dim=64, decoder_depth=1),
                                     dict(decoder_dim=128, decoder_depth=4))
    return MaskedAutoencoder(TinyViT(image_size=32, patch_size=4, **vit_options), mask_ratio=0.75,
                             normalize_target=True, **decoder_options)


def _mae_config(profile: Profile) -> dict:
    return _quick_or_full(profile, {}, dict(epochs=200, optimizer="adamw", lr=3e-4, weight_decay=0.05,
                                            warmup_epochs=10))




def _spec(build, quick_epochs: int, title: str, chapter: str, summary: str, **options) -> MethodSpec:
    family = {"pretext": "pretext tasks", "contrastive": "contrastive", "generative": "generative"}.get(
        chapter.split("/")[1], "reference")
    return MethodSpec(build, quick_epochs, summary, title, family, f"{chapter}.ipynb", **options)


_LEGACY: dict[str, MethodSpec] = {  # moving into the method modules, one by one
    "exemplar_cnn": _spec(_exemplar_cnn, 8, "Exemplar-CNN", "book/pretext/exemplar_cnn",
                          "Exemplar-CNN: classifying transformed seed patches (Dosovitskiy et al. 2014)"),
    "context_prediction": _spec(_context_prediction, 30, "Context Prediction", "book/pretext/context_prediction",
                                "predicting where a neighbouring patch lies (Doersch et al. 2015)"),
    "jigsaw": _spec(_jigsaw, 30, "Jigsaw Puzzle", "book/pretext/jigsaw",
                    "solving 3x3 jigsaw puzzles over 100 permutations (Noroozi and Favaro 2016)"),
    "colorization": _spec(_colorization, 6, "Colorization", "book/pretext/colorization",
                          "predicting the colours of the L channel as ab bins (Zhang et al. 2016)"),
    "counting": _spec(_counting, 6, "Learning to Count", "book/pretext/counting",
                      "counting visual primitives: tiles add up to the image (Noroozi et al. 2017)"),
    "rotation": _spec(_rotation, 4, "Rotation", "book/pretext/rotation",
                      "predicting which of four rotations was applied (Gidaris et al. 2018)"),
    "cpc_v2": _spec(_cpc_v2, 3, "CPC v2", "book/contrastive/cpc_v2",
                    "CPC v2: InfoNCE prediction of patch latents in four directions (Henaff et al. 2019)",
                    config_overrides=_cpc_v2_config),
    "align_uniform": _spec(_align_uniform, 8, "Alignment + uniformity", "book/contrastive/alignment_uniformity",
                           "L_align + L_uniform as the training objective (Wang and Isola 2020)"),
    "debiased": _spec(_debiased, 8, "Debiased contrastive", "book/contrastive/debiased",
                      "SimCLR with the debiased contrastive loss (Chuang et al. 2020)"),
    "hard_negatives": _spec(_hard_negatives, 8, "Hard negatives", "book/contrastive/hard_negatives",
                            "SimCLR with hard-negative weighting (Robinson et al. 2021)"),
    "invaspread": _spec(_invaspread, 10, "InvaSpread", "book/contrastive/invaspread",
                        "InvaSpread: invariance and spreading of instance features (Ye et al. 2019)"),
    "simclr_v2": _spec(_simclr_v2, 8, "SimCLRv2", "book/contrastive/simclr_v2",
                       "SimCLRv2 pre-training with the three-layer head (Chen et al. 2020b)"),
    "byol": _spec(_byol, 6, "BYOL", "book/contrastive/byol",
                  "BYOL: online predictor against an EMA target, no negatives (Grill et al. 2020)"),
    "barlow_twins": _spec(_barlow_twins, 10, "Barlow Twins", "book/contrastive/barlow_twins",
                          "Barlow Twins: cross-correlation of two views towards the identity (Zbontar et al. 2021)"),
    "instdisc": _spec(_instdisc, 20, "InstDisc", "book/contrastive/instdisc",
                      "InstDisc: instance discrimination against a memory bank (Wu et al. 2018)"),
    "cmc": _spec(_cmc, 10, "CMC", "book/contrastive/cmc",
                 "CMC: contrasting the L and ab views of Lab images (Tian et al. 2019)"),
    "dae": _spec(_dae, 16, "Denoising autoencoder", "book/generative/dae",
                 "denoising autoencoder: reconstructing masked pixels (Vincent et al. 2008)",
                 config_overrides=_autoencoder_config),
    "context_encoder": _spec(_context_encoder, 12, "Context Encoder", "book/generative/context_encoder",
                             "Context Encoder: inpainting the central region (Pathak et al. 2016)",
                             config_overrides=_autoencoder_config),
    "mae": _spec(_mae, 8, "MAE", "book/generative/mae", "MAE: a ViT reconstructing 75% hidden patches (He et al. 2022)",
                 config_overrides=_mae_config),
}


_BOOK_ORDER = ["exemplar_cnn", "context_prediction", "jigsaw", "colorization", "counting", "rotation", "cpc_v2",
               "align_uniform", "debiased", "hard_negatives", "invaspread", "simclr", "simclr_v2", "byol",
               "barlow_twins", "instdisc", "cmc", "dae", "context_encoder", "mae", "supervised"]


def _legacy_entry(name: str, spec: MethodSpec) -> MethodEntry:
    from .profiles import choose_profile

    training = {profile: spec.config_overrides(choose_profile(profile, verbose=False)) for profile in ("quick", "full")}
    training["quick"] = {"epochs": spec.quick_epochs, **training["quick"]}
    return MethodEntry(name, spec.title, spec.family, spec.chapter, _BOOK_ORDER.index(name) + 1, spec.summary,
                       lambda profile, train_data: spec.build(profile, train_data), {"quick": {}, "full": {}},
                       training)


def _discover() -> dict[str, MethodEntry]:
    entries = [_legacy_entry(name, spec) for name, spec in _LEGACY.items()]
    for module_info in pkgutil.iter_modules(_methods_package.__path__):
        module = importlib.import_module(f"{_methods_package.__name__}.{module_info.name}")
        entries += [entry for entry in vars(module).values() if isinstance(entry, MethodEntry)]
    names = [entry.name for entry in entries]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise RuntimeError(f"more than one method module declares {', '.join(duplicated)}")
    entries.sort(key=lambda entry: (FAMILIES.index(entry.family), entry.order))
    return {entry.name: entry for entry in entries}


METHODS: dict[str, MethodEntry] = _discover()  # in the book's order


def get(name: str) -> MethodEntry:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; `python -m sslbook list` shows the {len(METHODS)} methods: "
                         f"{', '.join(sorted(METHODS))}")
    return METHODS[name]
