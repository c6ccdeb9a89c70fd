"""What every chapter does the same way: its method's run (load-or-train), baselines, the results table."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

from torch import nn

from .augment import ViewRecipe
from .data import ImageData, balanced_indices
from .evaluate import (EVALUATION_VERSION, FEW_LABELS, PixelEncoder, evaluate, extract_features,
                       few_label_probe, linear_probe, nearest_training_images, neighbour_purity,
                       random_init_like)
from .paths import write_atomically
from .train import TrainConfig
from .runs import checkpoints_dir, describe_run, load_or_train, method_run  # noqa: F401 (the chapters' API)

METRIC_NAMES = {"knn": "kNN acc. (%)", "linear": "linear probe (%)",
                f"linear_{FEW_LABELS}": f"linear, {FEW_LABELS} labels/class (%)", "alignment": "L_align",
                "uniformity": "L_uniform"}


def baselines(encoder: nn.Module, train_data: ImageData, test_data: ImageData,
              recipe: ViewRecipe | None = None) -> dict[str, dict[str, float]]:
    """The same metrics for a random-init copy of ``encoder`` and for raw pixels.

    Each is computed once per architecture, data and recipe and kept beside the checkpoints, since
    every chapter of the same encoder would compute the same numbers again.
    """
    random_encoder = random_init_like(encoder).to(_device(encoder))
    return {"random init": evaluate_once(random_encoder, train_data, test_data, recipe),
            "raw pixels": evaluate_once(PixelEncoder(), train_data, test_data, recipe)}


def evaluate_once(encoder: nn.Module, train_data: ImageData, test_data: ImageData,
                  recipe: ViewRecipe | None = None) -> dict[str, float]:
    """``evaluate.evaluate``, computed once per encoder (architecture and weights), data and recipe.

    The result is kept beside the checkpoints, so the benchmark chapter reads what a chapter measured.
    """
    key = {name: describe_run(encoder, TrainConfig(), data) for name, data in
           (("train", train_data), ("test", test_data))} | {"recipe": repr(recipe), "evaluation": EVALUATION_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = checkpoints_dir() / f"scores-{type(encoder).__name__}-{digest}.json"
    if path.exists():
        return json.loads(path.read_text())
    scores = evaluate(encoder, train_data, test_data, recipe)
    write_atomically(path, lambda temporary: temporary.write_text(json.dumps(scores)))
    return scores


def simclr_like(run):
    """SimCLR's run with ``run``'s training settings (epochs, batch size, learning rate, seed, ...).

    The fair reference for a variant of SimCLR's loss: the variants of the book that train the same
    settings build the same run (one fingerprint), trained once and loaded by the others.
    """
    return method_run("simclr", run.profile, run.data, **dataclasses.asdict(run.config))


SIDE_SHARE = 0.1  # of the main run's steps, for each side run of a chapter outside the quick profile


def side_steps(run, quick_steps: int, share: float = SIDE_SHARE) -> int:
    """The steps of a side experiment beside a chapter's main ``run`` (a variant, an ablation):
    ``quick_steps`` in the quick profile; elsewhere ``share`` of the main run's steps, so that on a
    GPU each side run costs that share of the main run's time (sized to the budget in ``gpu``)."""
    if run.profile.settings_of == "quick":
        return quick_steps
    return max(1, round(share * run.config.epochs * (len(run.data) // run.config.batch_size)))


def simclr_at_same_budget(run, test_data: ImageData, recipe: ViewRecipe | None = None) -> dict[str, float]:
    """The scores of ``simclr_like(run)``, loaded or trained, on ``run``'s training data and ``test_data``."""
    simclr = simclr_like(run)
    simclr.load_or_train()
    return evaluate_once(simclr.encoder, run.data, test_data, recipe)


VARIANT_MARGIN = 2.0  # kNN points: the least difference of two single runs called a winner


@dataclasses.dataclass
class Variant:
    """A chapter's run trained again with some of its settings changed, scored beside the chapter's run."""

    run: object  # the variant's Run
    baseline: object  # the chapter's Run it changes
    changes: dict  # setting -> the variant's value
    history: object  # the variant's training History
    scores: dict[str, float]  # evaluate.evaluate of the variant's encoder
    baseline_scores: dict[str, float]  # the same of the chapter's encoder
    margin: float  # kNN points under which the two runs are not told apart
    test_data: ImageData  # what both were scored on, with ``run.data`` as the kNN's and probe's training set
    recipe: ViewRecipe | None  # the views of the alignment and uniformity

    def comparison(self):
        """The measured outcome as a Markdown sentence: both runs' kNN and linear-probe accuracy and
        their differences, with a direction only where the kNN difference reaches ``margin``."""
        from IPython.display import Markdown

        changed = ", ".join(f"`{key}={value!r}`" for key, value in self.changes.items())
        was = ", ".join(f"`{key}={self.baseline.settings.get(key, getattr(self.baseline.config, key, None))!r}`"
                        for key in self.changes)
        knn = self.scores["knn"] - self.baseline_scores["knn"]
        linear = self.scores["linear"] - self.baseline_scores["linear"]
        if abs(knn) < self.margin:
            verdict = (f"a kNN difference under {self.margin:g} points, which one run (one seed) of each "
                       "cannot tell from noise")
        else:
            verdict = f"the {'variant' if knn > 0 else 'chapter'}'s run is ahead by more than {self.margin:g} kNN points"
        return Markdown(
            f"Measured: the variant ({changed}; the chapter's run has {was}), trained for "
            f"{len(self.history.steps):,} steps in {self.history.seconds:.0f} s, reaches {self.scores['knn']:.1f}% "
            f"kNN and {self.scores['linear']:.1f}% linear-probe accuracy, against {self.baseline_scores['knn']:.1f}% "
            f"and {self.baseline_scores['linear']:.1f}% for the chapter's run ({knn:+.1f} and {linear:+.1f} points): "
            f"{verdict}.")


def variant_margin(name: str, profile_name: str) -> float:
    """``VARIANT_MARGIN``, or wider: the range of kNN accuracy over the recorded sweep's samples and
    seeds of ``name`` in ``profile_name`` (``results/sweep-*``), how far one run may fall from another."""
    from .sweep import load_sweep

    sweep = load_sweep(name, profile_name)
    if sweep is None:
        return VARIANT_MARGIN
    knn = sweep["summary"]["knn"]
    return max(VARIANT_MARGIN, round(knn["max"] - knn["min"], 1))


def train_variant(run, test_data: ImageData, recipe: ViewRecipe | None = None, **changes) -> Variant:
    """The chapter's ``run`` with ``changes`` (settings of the method or of the training loop, by name),
    everything else as the run has it, epochs included: loaded when saved, else trained; then both
    encoders scored on ``run``'s training data and ``test_data`` (``evaluate_once``)."""
    if not changes:
        raise ValueError("a variant changes at least one setting: pass it by name, e.g. temperature=0.2")
    current = {**dataclasses.asdict(run.config), **run.settings}
    unchanged = [key for key, value in changes.items() if key in current and current[key] == value]
    if unchanged:
        raise ValueError(f"{', '.join(f'{key}={changes[key]!r}' for key in unchanged)}: the chapter's run has "
                         "that already; pass another value to train a variant")
    variant = method_run(run.name, run.profile, run.data, **{**current, **changes})
    history = variant.load_or_train()
    return Variant(variant, run, dict(changes), history,
                   evaluate_once(variant.encoder, run.data, test_data, recipe),
                   evaluate_once(run.encoder, run.data, test_data, recipe),
                   variant_margin(run.name, run.profile.name), test_data, recipe)


LABELS_PER_CLASS = (1, 10, 100)  # the few-label settings of the label-efficiency curves


def scratch_run(full, per_class: int, seed: int = 0):
    """The ``supervised`` run on only ``per_class`` labelled images of each class (the probes' draw
    ``seed``) of the supervised run ``full`` on all of its training data, and those images: as many
    steps as ``full`` takes in the quick profile (``side_steps`` of them elsewhere), its warm-up the
    same share of them."""
    train_data = full.data
    steps_per_epoch = len(train_data) // full.config.batch_size
    steps = side_steps(full, full.config.total_steps(len(train_data)))
    labelled = train_data.subset(balanced_indices(train_data.labels, train_data.classes, per_class, seed)
                                 .to(train_data.labels.device))
    batch_size = min(full.config.batch_size, len(labelled))
    epochs = math.ceil(steps / (len(labelled) // batch_size))
    warmup = full.config.warmup_epochs * steps_per_epoch / (len(labelled) // batch_size)
    return method_run("supervised", full.profile, labelled, epochs=epochs, batch_size=batch_size,
                      warmup_epochs=warmup, seed=seed), labelled


def label_efficiency(name: str, encoder: nn.Module, profile, train_data: ImageData, test_data: ImageData,
                     per_class: tuple[int, ...] = LABELS_PER_CLASS) -> dict[str, dict[int, list[float]]]:
    """Test accuracy (%) of a linear probe that sees only ``per_class`` labelled training images of
    each class, and all of them: on ``name``'s frozen ``encoder``, on the random-init copy of it, and
    on the same architecture trained from scratch on those labelled images only (``scratch_run``).
    The frozen encoders' few-label accuracies are one per draw of the labelled images
    (``evaluate.few_label_probe``); the scratch encoder's, of draw 0, the images it was trained on."""
    everything = len(train_data) // len(train_data.classes)
    curves = {name: {}, "random init": {}, "supervised on those labels only": {}}
    train_labels, test_labels = train_data.labels.cpu(), test_data.labels.cpu()
    for title, model in ((name, encoder), ("random init", random_init_like(encoder).to(_device(encoder)))):
        train_features = extract_features(model, train_data.images)
        test_features = extract_features(model, test_data.images)
        for n in per_class:
            curves[title][n] = few_label_probe(train_features, train_labels, test_features, test_labels, n,
                                               n_classes=len(train_data.classes))
        curves[title][everything] = [linear_probe(train_features, train_labels, test_features, test_labels)]
    full = method_run("supervised", profile, train_data)
    for n in per_class:
        run, labelled = scratch_run(full, n)
        run.load_or_train(progress=False)
        labelled_features = extract_features(run.encoder, labelled.images)
        curves["supervised on those labels only"][n] = [linear_probe(
            labelled_features, labelled.labels.cpu(), extract_features(run.encoder, test_data.images), test_labels,
            standardise_with=extract_features(run.encoder, train_data.images))]
    full.load_or_train(progress=False)
    train_features = extract_features(full.encoder, train_data.images)
    curves["supervised on those labels only"][everything] = [linear_probe(
        train_features, train_labels, extract_features(full.encoder, test_data.images), test_labels)]
    return curves


def label_efficiency_table(curves: dict[str, dict[int, list[float]]]):
    """``label_efficiency``'s accuracies as a Markdown table: the mean over the draws, and their range."""
    from IPython.display import Markdown

    counts = sorted({n for curve in curves.values() for n in curve})
    lines = ["| labels per class | " + " | ".join(curves) + " |", "|---" * (len(curves) + 1) + "|"]
    for n in counts:
        cells = [(f"{sum(curve[n]) / len(curve[n]):.1f}" + (f" ({min(curve[n]):.1f} to {max(curve[n]):.1f})"
                                                             if len(curve[n]) > 1 else "")) if n in curve else "–"
                 for curve in curves.values()]
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return Markdown("\n".join(lines))


def knn_comparison(name: str, scores: dict[str, float], reference_name: str, reference: dict[str, float],
                   budget: str, margin: float = 2.0):
    """A Markdown sentence stating the measured kNN difference of two runs of one budget.

    A difference below ``margin`` points is too small to call a winner from one seed each, so the
    sentence gives it no direction.
    """
    from IPython.display import Markdown

    difference = scores["knn"] - reference["knn"]
    if abs(difference) < margin:
        verdict = f"less than {margin:g} points, too little to call a winner from one run (one seed) each"
    else:
        verdict = f"{name if difference > 0 else reference_name} is ahead by more than {margin:g} points"
    return Markdown(f"With the same budget ({budget}), {name} reaches {scores['knn']:.1f}% kNN accuracy and "
                    f"{reference_name} {reference['knn']:.1f}%, a difference of {difference:+.1f} points: {verdict}.")


def gain_sentence(name: str, scores: dict[str, float], reference: dict[str, float], n_test: int,
                  reference_name: str = "the random-init encoder"):
    """A Markdown sentence stating ``name``'s kNN and linear-probe gains over ``reference`` and whether
    each exceeds two standard errors of an accuracy measured on ``n_test`` images, sqrt(p(1-p)/n)
    at the reference's accuracy p: a gain within that is the size of the measurement's noise."""
    from IPython.display import Markdown

    parts = []
    for key, label in (("knn", "kNN"), ("linear", "linear-probe")):
        if key in scores and key in reference:
            gain, p = scores[key] - reference[key], reference[key] / 100
            noise = 200 * math.sqrt(p * (1 - p) / n_test)
            parts.append(f"{label} {gain:+.1f} points ({'beyond' if abs(gain) > noise else 'within'} two standard "
                         f"errors, ±{noise:.1f})")
    return Markdown(f"Measured in this run, {name} against {reference_name} on {n_test:,} test images: "
                    f"{' and '.join(parts)}.")


def geometry_sentence(name: str, scores: dict[str, float], baseline_scores: dict[str, dict[str, float]]):
    """A Markdown sentence placing ``name`` against the random-init encoder on the alignment-uniformity
    plane, worded from the measured values (lower is better on both axes)."""
    from IPython.display import Markdown

    random = baseline_scores["random init"]
    closer = "closer together" if scores["alignment"] < random["alignment"] else "further apart"
    spread = "more" if scores["uniformity"] < random["uniformity"] else "less"
    return Markdown(f"Measured in this run: the two views of an image lie {closer} in {name}'s features than in "
                    f"the random-init encoder's ($\\mathcal{{L}}_{{align}}$ {scores['alignment']:.2f} against "
                    f"{random['alignment']:.2f}), and the features are {spread} uniformly spread over the sphere "
                    f"($\\mathcal{{L}}_{{uniform}}$ {scores['uniformity']:.2f} against {random['uniformity']:.2f}).")


def clusters_sentence(name: str, encoder: nn.Module, random_encoder: nn.Module, test_data: ImageData,
                      k: int = 10, shown: int = 3):
    """A Markdown sentence naming the classes that gather best in ``name``'s features (the highest share
    of same-class images among each image's ``k`` nearest, ``evaluate.neighbour_purity``) and those that
    gained most over the random-init encoder, as the embedding maps show them."""
    from IPython.display import Markdown

    n_classes = len(test_data.classes)
    trained, random = (neighbour_purity(extract_features(model, test_data.images), test_data.labels.cpu(),
                                        n_classes, k) for model in (encoder, random_encoder))

    def listed(order, values):
        return ", ".join(f"{test_data.classes[i]} ({100 * values[i]:.0f}%)" for i in order[:shown].tolist())

    gain = trained - random
    gains = ", ".join(f"{test_data.classes[i]} ({100 * gain[i]:+.0f} points)"
                      for i in gain.argsort(descending=True)[:shown].tolist())
    return Markdown(f"Measured in this run, among each test image's {k} nearest neighbours in the features "
                    f"(chance: {100 / n_classes:.0f}% of the same class): the classes that gather best in "
                    f"{name}'s features are {listed(trained.argsort(descending=True), trained)}; on average "
                    f"{100 * trained.mean():.0f}% of neighbours share the class, against "
                    f"{100 * random.mean():.0f}% for the random-init encoder. The largest gains over it: {gains}.")


def retrieval(name: str, encoder: nn.Module, random_encoder: nn.Module, train_data: ImageData,
              test_data: ImageData, n_queries: int = 4, k: int = 6):
    """Show a few test images (one per class, evenly spaced over the classes) and their ``k`` nearest
    training images by ``name``'s features and by the random-init encoder's; return a Markdown sentence
    with the share of same-class neighbours over all test images."""
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import Markdown

    from .plots import retrieval_grid

    n_classes = len(test_data.classes)
    train_labels, test_labels = train_data.labels.cpu(), test_data.labels.cpu()
    shown_classes = torch.linspace(0, n_classes - 1, n_queries).round().long()
    queries = torch.stack([torch.nonzero(test_labels == label)[0, 0] for label in shown_classes.tolist()])
    neighbours, same_class, precision = {}, {}, {}
    for title, model in (("random init", random_encoder), (name, encoder)):
        nearest = nearest_training_images(extract_features(model, train_data.images),
                                          extract_features(model, test_data.images), k)
        agrees = train_labels[nearest] == test_labels[:, None]
        precision[title] = 100 * agrees.float().mean().item()
        neighbours[title], same_class[title] = train_data.images.cpu()[nearest[queries]], agrees[queries]
    retrieval_grid(test_data.images.cpu()[queries], neighbours, same_class)
    plt.show()
    return Markdown(f"Measured over all {len(test_data):,} test images: of each one's {k} nearest training images, "
                    f"{precision[name]:.0f}% share its class in {name}'s features and {precision['random init']:.0f}% "
                    f"in the random-init encoder's (chance: {100 / n_classes:.0f}%).")


GAIN_NAMES = {"knn_gain": "kNN gain", "linear_gain": "linear-probe gain"}


def reference_results(name: str, profile_name: str = "quick", asserted: tuple[str, float] | None = None):
    """The chapter's reference results as Markdown: the published numbers of the method's entry, the
    book's quick-profile sweep over samples and seeds (``sslbook.sweep``), and the full profile's run
    from ``results/full/`` where one is recorded. ``asserted`` = (``"knn_gain"`` or ``"linear_gain"``,
    margin): the chapter's assertion, set against the smallest gain of the sweep."""
    from IPython.display import Markdown

    from .registry import get
    from .results import reference_result
    from .sweep import load_sweep

    entry, parts = get(name), []
    if entry.published:
        rows = "\n".join(f"| {row.source} | {row.metric} | {row.value:g} | {row.setting} |" for row in entry.published)
        parts.append("**Published** (other data, architecture or budget than this book's):\n\n"
                     "| source | measure | result (%) | setting |\n|---|---|---|---|\n" + rows)
    else:
        parts.append("**Published:** none recorded here: no result of this method could be checked against its "
                     "paper's tables or its authors' released code, and none from memory is shown.")
    sweep = load_sweep(name, profile_name)
    if sweep is None:
        parts.append(f"**This book, {profile_name} profile:** no sweep is recorded in results/sweep-{profile_name}/; "
                     f"`python -m sslbook sweep {name} --profile {profile_name}` writes one.")
    else:
        summary = sweep["summary"]
        cells = [f"{summary[key]['mean']:.1f} ({summary[key]['min']:.1f} to {summary[key]['max']:.1f})"
                 for key in ("knn", "linear", "knn_gain", "linear_gain")]
        text = (f"**This book, {profile_name} profile**, over {sweep['samples']} class-balanced samples of "
                f"{sweep['training images']:,} training images with as many seeds (`{sweep['made with']}`, "
                f"on {sweep['hardware']}); mean (lowest to highest):\n\n| kNN (%) | linear probe (%) | kNN gain | "
                f"linear-probe gain |\n|---|---|---|---|\n| " + " | ".join(cells) + " |")
        if asserted is not None:
            key, margin = asserted
            lowest = summary[key]["min"]
            text += (f"\n\nThe chapter asserts a {GAIN_NAMES[key]} of at least {margin:g} points; the lowest of "
                     f"the sweep's runs was {lowest:.1f} ({lowest - margin:+.1f} points of room).")
        parts.append(text)
    full = reference_result(name)
    if full is None:
        parts.append(f"**This book, full profile (GPU):** not run yet; `python -m sslbook train {name} --profile "
                     f"full --out results/full` records it.")
    else:
        parts.append(f"**This book, full profile ({full['hardware']}):** kNN {full['knn']:.1f}%, linear probe "
                     f"{full['linear']:.1f}%.")
    return Markdown("\n\n".join(parts))


def _device(module: nn.Module):
    return next(module.parameters()).device


def results_table(rows: dict[str, dict[str, float]]):
    """Show a Markdown table of metrics, one row per encoder."""
    from IPython.display import Markdown

    columns = [key for key in METRIC_NAMES if any(key in row for row in rows.values())]
    lines = ["| encoder | " + " | ".join(METRIC_NAMES[key] for key in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row[key]:.2f}" if key in row else "–" for key in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return Markdown("\n".join(lines))
