"""Tests of sslbook.methods.instdisc: the InstDisc loss against the equation written out with loops."""

import math

import pytest
import torch

from sslbook.augment import augment
from sslbook.data import ImageData
from sslbook.methods.instdisc import InstDisc
from sslbook.networks import SmallCNN
from sslbook.runs import describe_run
from sslbook.train import Batch, TrainConfig

from one_step import random_uint8_images, train_one_step


def tiny_method(n_data: int = 12, n_noise: int = 5, proximal_weight: float = 0.7, **options) -> InstDisc:
    torch.manual_seed(0)
    encoder = SmallCNN(width=4, feature_dim=8)
    return InstDisc(encoder, n_data, embedding_dim=6, n_noise=n_noise, temperature=0.5, momentum=0.3,
                    proximal_weight=proximal_weight, **options)


def batch_of(indices: list[int], seed: int) -> Batch:
    images = torch.randint(0, 256, (len(indices), 3, 32, 32), generator=torch.Generator().manual_seed(seed),
                           dtype=torch.uint8)
    return Batch(images, torch.zeros(len(indices), dtype=torch.long), torch.tensor(indices),
                 torch.Generator().manual_seed(seed))


def loop_loss(fresh, stored, noise_rows, normaliser, n_data, temperature, lambd):
    """-log h(i, v_i) + lambda ||v_i^(t) - v_i^(t-1)||^2 - sum_k log(1 - h(i, v'_k)), averaged over i."""
    total = 0.0
    for v, v_old, noise in zip(fresh, stored, noise_rows):
        m = len(noise)

        def h(entry):
            p = math.exp(sum(a * b for a, b in zip(entry, v)) / temperature) / normaliser
            return p / (p + m / n_data)

        total += -math.log(h(v_old)) + lambd * sum((a - b) ** 2 for a, b in zip(v, v_old))
        total += -sum(math.log(1 - h(entry)) for entry in noise)
    return total / len(fresh)


def replay(method: InstDisc, batch: Batch, bank_before: torch.Tensor):
    """The same step recomputed by hand: the same views and noise draws, from a copy of the generator."""
    generator = torch.Generator().manual_seed(batch.generator.initial_seed())
    views = augment(batch.images, method.recipe, generator)
    with torch.no_grad():
        fresh = torch.nn.functional.normalize(method.head(method.encoder(views)), dim=1)
    raw = torch.randint(bank_before.shape[0] - 1, (len(batch.indices), method.n_noise), generator=generator)
    # Uniform over the other entries: draws at or above the image's own row move up by one.
    noise = [[d + 1 if d >= own else d for d in row] for row, own in zip(raw.tolist(), batch.indices.tolist())]
    assert all(own not in row for row, own in zip(noise, batch.indices.tolist()))
    return fresh, bank_before[batch.indices], bank_before[torch.tensor(noise)]


def test_loss_matches_the_equation_and_z_is_estimated_once():
    method = tiny_method()
    first, second = batch_of([3, 0, 7, 11], seed=1), batch_of([5, 3, 2, 9], seed=2)

    bank_before = method.bank.features.clone()
    output = method.training_loss(first)
    fresh, stored, noise = replay(method, first, bank_before)
    scores = [math.exp(sum(a * b for a, b in zip(v, e)) / 0.5)
              for v, entries in zip(fresh.tolist(), ([s] + n for s, n in zip(stored.tolist(), noise.tolist())))
              for e in entries]
    z = sum(scores) / len(scores) * 12  # Z = n * mean exp(score) on the first batch
    assert method.normaliser.item() == pytest.approx(z, rel=1e-5)
    expected = loop_loss(fresh.tolist(), stored.tolist(), noise.tolist(), z, 12, 0.5, 0.7)
    assert output["loss"].item() == pytest.approx(expected, rel=1e-4)

    bank_before = method.bank.features.clone()
    output = method.training_loss(second)
    assert method.normaliser.item() == pytest.approx(z, rel=1e-5)  # kept fixed
    fresh, stored, noise = replay(method, second, bank_before)
    expected = loop_loss(fresh.tolist(), stored.tolist(), noise.tolist(), z, 12, 0.5, 0.7)
    assert output["loss"].item() == pytest.approx(expected, rel=1e-4)


def test_the_step_writes_the_fresh_features_into_the_bank():
    method = tiny_method()
    batch = batch_of([4, 1, 8], seed=3)
    bank_before = method.bank.features.clone()
    method.training_loss(batch)
    fresh, stored, _ = replay(method, batch, bank_before)
    for row, (v, old) in zip(batch.indices.tolist(), zip(fresh.tolist(), stored.tolist())):
        mixed = [0.3 * o + 0.7 * f for o, f in zip(old, v)]
        norm = math.sqrt(sum(a * a for a in mixed))
        assert method.bank.features[row].tolist() == pytest.approx([a / norm for a in mixed], rel=1e-5, abs=1e-6)
    untouched = [i for i in range(12) if i not in batch.indices.tolist()]
    torch.testing.assert_close(method.bank.features[untouched], bank_before[untouched])


def test_logged_values_are_the_two_terms_of_the_loss():
    method = tiny_method()
    output = method.training_loss(batch_of([0, 1, 2], seed=4))
    assert output["loss"].item() == pytest.approx(output["nce"] + output["proximal"], rel=1e-5)
    assert -1 <= output["bank_cosine"] <= 1


def test_one_training_step_with_the_shared_loop():
    method = tiny_method(n_data=16, n_noise=8)
    bank_before = method.bank.features.clone()
    train_one_step(method, random_uint8_images(16), batch_size=8)
    assert method.normaliser.item() > 0
    changed = (method.bank.features - bank_before).abs().sum(dim=1) > 0
    assert int(changed.sum()) == 8  # exactly the rows of the one batch


def test_bad_inputs_stop_with_clear_messages():
    with pytest.raises(ValueError, match=r"momentum m must be a number in \[0, 1\]"):
        InstDisc(SmallCNN(4, 8), 10, momentum=1.2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        InstDisc(SmallCNN(4, 8), 10, temperature=0.0)
    with pytest.raises(ValueError, match="n_noise"):
        InstDisc(SmallCNN(4, 8), 10, n_noise=0)
    with pytest.raises(ValueError, match="proximal_weight must be >= 0"):
        InstDisc(SmallCNN(4, 8), 10, proximal_weight=-1.0)
    with pytest.raises(ValueError, match="n_data must be a positive int"):
        InstDisc(SmallCNN(4, 8), 0)
    method = tiny_method(n_data=12)
    with pytest.raises(ValueError, match="bank index out of range"):
        method.training_loss(batch_of([3, 12], seed=5))


# ---------------------------------------------------------------------------
# The exact softmax over the whole bank (objective="softmax").
# ---------------------------------------------------------------------------


def test_softmax_objective_is_minus_log_p_over_every_bank_entry():
    method = tiny_method(objective="softmax")
    batch = batch_of([3, 0, 7, 11], seed=6)
    bank_before = method.bank.features.clone()
    output = method.training_loss(batch)
    views = augment(batch.images, method.recipe, torch.Generator().manual_seed(6))
    with torch.no_grad():
        fresh = torch.nn.functional.normalize(method.head(method.encoder(views)), dim=1).tolist()
    bank, expected = bank_before.tolist(), 0.0
    for v, i in zip(fresh, batch.indices.tolist()):
        exps = [math.exp(sum(a * b for a, b in zip(entry, v)) / 0.5) for entry in bank]
        expected += -math.log(exps[i] / sum(exps)) + 0.7 * sum((a - b) ** 2 for a, b in zip(v, bank[i]))
    assert output["loss"].item() == pytest.approx(expected / 4, rel=1e-4)
    assert output["loss"].item() == pytest.approx(output["softmax"] + output["proximal"], rel=1e-5)
    assert "nce" not in output
    assert method.normaliser.item() == -1.0  # no Z to estimate: the denominator is summed exactly


def test_one_training_step_with_the_softmax_objective():
    method = tiny_method(n_data=16, objective="softmax")
    bank_before = method.bank.features.clone()
    _, changed = train_one_step(method, random_uint8_images(16), batch_size=8)
    assert any(changed)
    assert int(((method.bank.features - bank_before).abs().sum(dim=1) > 0).sum()) == 8


def test_the_objective_is_nce_by_default_and_softmax_changes_the_fingerprint():
    data = ImageData(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["a"])
    described = [describe_run(tiny_method(**options), TrainConfig(), data)
                 for options in ({}, {"objective": "nce"}, {"objective": "softmax"})]
    assert described[1] == described[0]
    assert described[2]["architecture"] != described[0]["architecture"]
    assert "objective='softmax'" in repr(tiny_method(objective="softmax"))


def test_a_bad_objective_name_is_refused():
    with pytest.raises(ValueError, match="objective must be one of 'nce', 'softmax', got 'soft-max'"):
        tiny_method(objective="soft-max")
