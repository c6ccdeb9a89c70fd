import pytest
import torch
import torch.nn.functional as F

from sslbook import evaluate
from sslbook.augment import ViewRecipe
from sslbook.data import ImageData
from sslbook.losses import uniform_loss
from sslbook.networks import SmallCNN


def brute_force_knn(train_features, train_labels, test_features, n_classes, k, temperature):
    predictions = []
    for query in test_features:
        similarities = [(F.cosine_similarity(query, other, dim=0).item(), int(label))
                        for other, label in zip(train_features, train_labels)]
        similarities.sort(key=lambda pair: -pair[0])
        votes = [0.0] * n_classes
        for similarity, label in similarities[:k]:
            votes[label] += torch.exp(torch.tensor(similarity / temperature)).item()
        predictions.append(max(range(n_classes), key=lambda c: votes[c]))
    return torch.tensor(predictions)


@pytest.mark.parametrize("k,temperature", [(1, 0.1), (5, 0.1), (7, 1.0), (40, 0.05)])
def test_knn_matches_a_brute_force_vote(k, temperature):
    torch.manual_seed(k)
    train_features, train_labels = torch.randn(40, 6), torch.randint(0, 3, (40,))
    test_features = torch.randn(25, 6)
    expected = brute_force_knn(train_features, train_labels, test_features, 3, k, temperature)
    actual = evaluate.knn_predict(train_features, train_labels, test_features, 3, k, temperature, chunk_size=7)
    assert torch.equal(actual, expected)


def test_knn_hand_made_case_weights_close_neighbours():
    train_points = torch.tensor([[1.0, 0.9], [1.0, 1.1], [1.0, 1.0], [0.1, 1.0], [0.0, 1.0]])
    train_classes = torch.tensor([1, 1, 1, 0, 0])
    query = torch.tensor([[0.2, 1.0]])
    # equal votes: three class-1 neighbours outvote two class-0 ones
    assert evaluate.knn_predict(train_points, train_classes, query, 2, k=5, temperature=100.0).item() == 1
    # sharp weights: the two much closer class-0 points win
    assert evaluate.knn_predict(train_points, train_classes, query, 2, k=5, temperature=0.01).item() == 0
    assert evaluate.knn_accuracy(train_points, train_classes, query, torch.tensor([0]), k=2) == 100.0


def test_knn_bad_inputs():
    features, labels = torch.randn(5, 3), torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match="k must be between 1 and the 5"):
        evaluate.knn_predict(features, labels, features, 1, k=6)
    with pytest.raises(ValueError, match="temperature must be positive"):
        evaluate.knn_predict(features, labels, features, 1, k=2, temperature=0)
    with pytest.raises(ValueError, match="same encoder"):
        evaluate.knn_predict(features, labels, torch.randn(2, 4), 1, k=2)


def test_linear_probe_separates_separable_classes_and_not_noise():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (300,))
    centres = torch.randn(3, 10) * 5
    features = centres[labels] + torch.randn(300, 10)
    assert evaluate.linear_probe(features[:200], labels[:200], features[200:], labels[200:]) == 100.0
    noise = torch.randn(300, 10)
    assert evaluate.linear_probe(noise[:200], labels[:200], noise[200:], labels[200:]) < 60.0


IDENTITY_RECIPE = ViewRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


def test_alignment_is_zero_for_identical_views_and_uniformity_matches_the_closed_form():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    alignment, uniformity = evaluate.alignment_uniformity(evaluate.PixelEncoder(), images, IDENTITY_RECIPE)
    assert alignment == pytest.approx(0.0, abs=1e-10)
    features = F.normalize(images.flatten(1).double() / 255, dim=1)
    pairs = [torch.exp(-2 * (features[i] - features[j]).pow(2).sum()) for i in range(64) for j in range(i + 1, 64)]
    assert uniformity == pytest.approx(torch.log(torch.stack(pairs).mean()).item(), rel=1e-4)
    assert uniformity == pytest.approx(uniform_loss(features).item(), rel=1e-4)


def test_random_init_like_is_a_fresh_copy_of_the_same_architecture():
    torch.manual_seed(1)
    encoder = SmallCNN(width=4, feature_dim=8)
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.add_(1.0)
    baseline = evaluate.random_init_like(encoder, seed=0)
    assert type(baseline) is type(encoder) and baseline is not encoder
    assert all(not torch.equal(a, b) for a, b in zip(encoder.parameters(), baseline.parameters()) if a.ndim > 1)
    again = evaluate.random_init_like(encoder, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), baseline.parameters()))


def test_evaluate_reports_every_metric_and_extracts_features_in_eval_mode():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    data = ImageData(images, torch.arange(40) % 2, ["a", "b"])
    encoder = SmallCNN(width=4, feature_dim=8).train()
    scores = evaluate.evaluate(encoder, data, data, IDENTITY_RECIPE, k=5)
    assert set(scores) == {"knn", "linear", f"linear_{evaluate.FEW_LABELS}", "alignment", "uniformity"}  # 20 per class
    assert encoder.training  # restored after extraction
    features = evaluate.extract_features(encoder, images, batch_size=7)
    assert torch.allclose(features, evaluate.extract_features(encoder, images.float() / 255, batch_size=40), atol=1e-5)


def test_neighbour_purity_matches_a_brute_force_count():
    generator = torch.Generator().manual_seed(0)
    features, labels, k = torch.randn(40, 5, generator=generator), torch.arange(40) % 3, 4
    purity = evaluate.neighbour_purity(features, labels, n_classes=3, k=k)
    unit = F.normalize(features, dim=1)
    per_image = []
    for i in range(40):
        others = sorted((j for j in range(40) if j != i), key=lambda j: -float(unit[i] @ unit[j]))[:k]
        per_image.append(sum(int(labels[j] == labels[i]) for j in others) / k)
    expected = [sum(p for p, label in zip(per_image, labels) if label == c) / int((labels == c).sum()) for c in range(3)]
    assert torch.allclose(purity, torch.tensor(expected))


def test_neighbour_purity_is_one_for_separated_classes_and_rejects_a_bad_k():
    labels = torch.arange(30) % 3
    features = F.one_hot(labels, 3).float() + 0.01 * torch.randn(30, 3)
    assert torch.equal(evaluate.neighbour_purity(features, labels, 3, k=5), torch.ones(3))
    with pytest.raises(ValueError, match="k must be between 1 and 29"):
        evaluate.neighbour_purity(features, labels, 3, k=30)


def test_nearest_training_images_match_a_sort_of_cosine_similarities():
    generator = torch.Generator().manual_seed(1)
    train, test = torch.randn(30, 4, generator=generator), torch.randn(5, 4, generator=generator)
    nearest = evaluate.nearest_training_images(train, test, k=3)
    for query, row in zip(test, nearest):
        ranked = sorted(range(30), key=lambda i: -F.cosine_similarity(query, train[i], dim=0).item())
        assert row.tolist() == ranked[:3]
    with pytest.raises(ValueError, match="k must be between 1 and the 30 training features"):
        evaluate.nearest_training_images(train, test, k=31)


def test_extracted_features_are_reused_only_for_the_same_weights_and_unchanged_images(monkeypatch):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    encoder = SmallCNN(width=4, feature_dim=8)
    calls = []
    forward = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda x: calls.append(len(x)) or forward(x))
    first = evaluate.extract_features(encoder, images)
    expected = first.clone()
    first.zero_()  # the caller's copy: the kept one is untouched
    again = evaluate.extract_features(encoder, images)
    assert len(calls) == 1 and torch.equal(again, expected)
    images[0] = 0  # changed in place: extracted again
    changed = evaluate.extract_features(encoder, images)
    assert len(calls) == 2 and not torch.equal(changed[0], again[0]) and torch.equal(changed[1:], again[1:])
    with torch.no_grad():
        next(encoder.parameters()).add_(1.0)  # new weights: extracted again
    evaluate.extract_features(encoder, images)
    assert len(calls) == 3
    evaluate.extract_features(encoder, images.clone())  # other images, however equal
    assert len(calls) == 4
