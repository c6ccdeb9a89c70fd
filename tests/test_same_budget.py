"""The SimCLR variants are compared with SimCLR trained with their own budget, and the sentence that
reports the comparison states the measured difference."""
from sslbook import chapter, runs
from sslbook.profiles import choose_profile

from test_runs import tiny_data

VARIANTS = ("debiased", "hard_negatives", "align_uniform")


def test_the_variants_share_one_simclr_run_with_their_own_training_settings():
    profile, data = choose_profile("quick", verbose=False), tiny_data()
    references = {}
    for name in VARIANTS:
        variant = runs.method_run(name, profile, data)
        reference = chapter.simclr_like(variant)
        assert reference.name == "simclr" and reference.config == variant.config, name
        references[name] = reference.fingerprint
    assert len(set(references.values())) == 1  # trained once, loaded by the other chapters
    default = runs.method_run("simclr", profile, data)
    assert default.config.epochs != variant.config.epochs  # so the chapters' own SimCLR run would not be fair
    assert default.fingerprint not in references.values()


def test_the_comparison_sentence_states_the_difference_and_a_direction_only_beyond_the_margin():
    close = chapter.knn_comparison("A", {"knn": 41.3}, "B", {"knn": 40.0}, "8 epochs").data
    assert "A reaches 41.3% kNN accuracy and B 40.0%, a difference of +1.3 points" in close
    assert "too little to call a winner" in close and "ahead" not in close
    apart = chapter.knn_comparison("A", {"knn": 37.0}, "B", {"knn": 40.5}, "8 epochs").data
    assert "a difference of -3.5 points: B is ahead by more than 2 points" in apart
    assert chapter.knn_comparison("A", {"knn": 43.0}, "B", {"knn": 40.5}, "8 epochs").data.endswith(
        "A is ahead by more than 2 points.")
