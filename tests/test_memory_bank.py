"""Tests of sslbook.memory_bank (the InstDisc memory bank, checked entry by entry with plain Python) and of
InstDisc's proximal term (sslbook.losses.instdisc_proximal_term)."""

import math

import pytest
import torch

from sslbook.losses import instdisc_proximal_term
from sslbook.memory_bank import MemoryBank


def unit(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(a * a for a in v))
    return [a / norm for a in v]


def expected_update(old: list[float], new: list[float], momentum: float) -> list[float]:
    """normalise(m * old + (1 - m) * normalise(new)), one coordinate at a time."""
    new = unit(new)
    return unit([momentum * o + (1 - momentum) * n for o, n in zip(old, new)])


def test_initial_entries_are_unit_vectors_of_the_right_shape():
    bank = MemoryBank(7, 5, generator=torch.Generator().manual_seed(0))
    assert bank.features.shape == (7, 5)
    assert (bank.n_data, bank.dim) == (7, 5)
    torch.testing.assert_close(bank.features.norm(dim=1), torch.ones(7))


def test_initialisation_is_reproducible_with_a_generator():
    first = MemoryBank(6, 3, generator=torch.Generator().manual_seed(4)).features
    second = MemoryBank(6, 3, generator=torch.Generator().manual_seed(4)).features
    torch.testing.assert_close(first, second)


def test_update_step_by_step_gives_the_exact_values():
    bank = MemoryBank(4, 3)
    start = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], unit([1.0, 1.0, 0.0])]
    bank.features = torch.tensor(start, dtype=torch.float64)
    expected = [row[:] for row in start]

    # Step 1: rows 0 and 2 with momentum 0.5.
    new = [[0.0, 2.0, 0.0], [3.0, 0.0, 4.0]]
    bank.update(torch.tensor([0, 2]), torch.tensor(new, dtype=torch.float64), momentum=0.5)
    expected[0] = expected_update(expected[0], new[0], 0.5)
    expected[2] = expected_update(expected[2], new[1], 0.5)
    assert expected[0] == pytest.approx([1 / math.sqrt(2), 1 / math.sqrt(2), 0.0])  # hand-computed
    torch.testing.assert_close(bank.features, torch.tensor(expected, dtype=torch.float64))

    # Step 2: row 0 again (its entry now mixes both visits) and row 3, momentum 0.9.
    new = [[0.0, 0.0, -1.0], [1.0, -1.0, 0.5]]
    bank.update(torch.tensor([3, 0]), torch.tensor(new, dtype=torch.float64), momentum=0.9)
    expected[3] = expected_update(expected[3], new[0], 0.9)
    expected[0] = expected_update(expected[0], new[1], 0.9)
    torch.testing.assert_close(bank.features, torch.tensor(expected, dtype=torch.float64))
    assert bank.features[1].tolist() == start[1]  # never visited, never changed


def test_momentum_zero_overwrites_and_momentum_one_keeps():
    bank = MemoryBank(3, 2)
    before = bank.features.clone()
    bank.update(torch.tensor([1]), torch.tensor([[3.0, 4.0]]), momentum=1.0)
    torch.testing.assert_close(bank.features, before)
    bank.update(torch.tensor([1]), torch.tensor([[3.0, 4.0]]), momentum=0.0)
    torch.testing.assert_close(bank.features[1], torch.tensor([0.6, 0.8]))


def test_update_keeps_tensors_read_before_it_intact_for_backward():
    bank = MemoryBank(5, 4, generator=torch.Generator().manual_seed(1))
    fresh = torch.randn(2, 4, requires_grad=True)
    scores = fresh @ bank.features.T  # autograd keeps the bank for the gradient of fresh
    bank.update(torch.tensor([0, 1]), fresh, momentum=0.5)
    scores.sum().backward()  # would fail had the update written into the saved tensor
    assert fresh.grad is not None


def test_sample_negatives_shape_range_and_reproducibility():
    bank = MemoryBank(10, 3)
    drawn = bank.sample_negatives(4, 50, torch.Generator().manual_seed(0))
    assert drawn.shape == (4, 50) and drawn.dtype == torch.int64
    assert int(drawn.min()) >= 0 and int(drawn.max()) <= 9
    again = bank.sample_negatives(4, 50, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)


def test_sample_negatives_is_uniform_over_the_bank():
    bank = MemoryBank(5, 2)
    drawn = bank.sample_negatives(100, 1000, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(drawn.flatten(), minlength=5).double() / drawn.numel()
    torch.testing.assert_close(frequencies, torch.full((5,), 0.2, dtype=torch.float64), atol=0.005, rtol=0)


def test_sample_negatives_can_exclude_each_samples_own_entry():
    bank = MemoryBank(4, 2)
    own = torch.tensor([0, 3, 2])
    drawn = bank.sample_negatives(3, 4000, torch.Generator().manual_seed(1), exclude=own)
    for row, entry in zip(drawn.tolist(), own.tolist()):
        counts = [row.count(k) for k in range(4)]
        assert counts[entry] == 0
        others = [c / len(row) for k, c in enumerate(counts) if k != entry]
        assert others == pytest.approx([1 / 3] * 3, abs=0.03)  # uniform over the other three


def test_lookup_returns_the_stored_rows():
    bank = MemoryBank(6, 3, generator=torch.Generator().manual_seed(2))
    rows = bank.lookup(torch.tensor([4, 0]))
    assert rows.tolist() == [bank.features[4].tolist(), bank.features[0].tolist()]


def test_proximal_term_matches_a_loop():
    generator = torch.Generator().manual_seed(3)
    fresh, stored = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    expected = sum(sum((a - b) ** 2 for a, b in zip(f, s)) for f, s in zip(fresh.tolist(), stored.tolist())) / 4
    torch.testing.assert_close(instdisc_proximal_term(fresh, stored, 2.5).item(), 2.5 * expected, rtol=1e-5, atol=1e-6)
    assert instdisc_proximal_term(fresh, stored, 0.0).item() == 0.0


def test_proximal_term_gradient_reaches_only_the_fresh_features():
    fresh = torch.tensor([[1.0, 0.0]], requires_grad=True)
    stored = torch.tensor([[0.0, 1.0]], requires_grad=True)
    instdisc_proximal_term(fresh, stored, 1.0).backward()
    torch.testing.assert_close(fresh.grad, torch.tensor([[2.0, -2.0]]))  # d/dv ||v - s||^2 = 2 (v - s)
    assert stored.grad is None


@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan"), True, "0.5"])
def test_momentum_outside_the_unit_interval_is_refused(momentum):
    bank = MemoryBank(3, 2)
    with pytest.raises(ValueError, match=r"momentum m must be a number in \[0, 1\]"):
        bank.update(torch.tensor([0]), torch.ones(1, 2), momentum=momentum)


@pytest.mark.parametrize("indices", [torch.tensor([3]), torch.tensor([-1]), torch.tensor([0, 10])])
def test_index_out_of_range_is_refused(indices):
    bank = MemoryBank(3, 2)
    with pytest.raises(ValueError, match="bank index out of range.*rows 0..2"):
        bank.update(indices, torch.ones(len(indices), 2), momentum=0.5)
    with pytest.raises(ValueError, match="bank index out of range"):
        bank.lookup(indices)


def test_bad_indices_and_features_are_refused():
    bank = MemoryBank(4, 2)
    with pytest.raises(ValueError, match="indices must be distinct"):
        bank.update(torch.tensor([1, 1]), torch.ones(2, 2), momentum=0.5)
    with pytest.raises(ValueError, match="1-D tensor"):
        bank.update(torch.tensor([[1]]), torch.ones(1, 2), momentum=0.5)
    with pytest.raises(ValueError, match="integer tensor"):
        bank.update(torch.tensor([1.0]), torch.ones(1, 2), momentum=0.5)
    with pytest.raises(ValueError, match=r"features must have shape \(len\(indices\), d\) = \(2, 2\)"):
        bank.update(torch.tensor([0, 1]), torch.ones(2, 3), momentum=0.5)
    with pytest.raises(ValueError, match=r"features must have shape"):
        bank.update(torch.tensor([0, 1]), torch.ones(3, 2), momentum=0.5)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="n_data must be a positive int"):
        MemoryBank(0, 3)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        MemoryBank(3, 2.5)
    bank = MemoryBank(3, 2)
    with pytest.raises(ValueError, match="m must be a positive int"):
        bank.sample_negatives(2, 0)
    with pytest.raises(ValueError, match="exclude must hold one row per sample"):
        bank.sample_negatives(2, 5, exclude=torch.tensor([0]))
    with pytest.raises(ValueError, match="bank index out of range"):
        bank.sample_negatives(1, 5, exclude=torch.tensor([3]))
    with pytest.raises(ValueError, match="lambd must be a number >= 0"):
        instdisc_proximal_term(torch.ones(1, 2), torch.ones(1, 2), -1.0)
    with pytest.raises(ValueError, match=r"fresh and stored must both have shape \(B, d\)"):
        instdisc_proximal_term(torch.ones(2, 2), torch.ones(1, 2), 1.0)
