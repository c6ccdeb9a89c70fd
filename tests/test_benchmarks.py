"""The benchmark scripts run and print their figures (their speed is measured by running them, not here)."""
import pytest

from benchmarks import memory_format, pipeline_benchmark


def test_the_pipeline_benchmark_prints_both_pipelines_and_their_ratio(capsys, tmp_path):
    record = pipeline_benchmark.main(["--steps", "2", "--warmup", "1", "--images", "64", "--batch-size", "16",
                                      "--workers", "0", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    for expected in ("sslbook", "conventional", "ratio sslbook / conventional"):
        assert expected in printed
    rows = record["pipelines"]
    assert record["ratio"] == pytest.approx(rows["sslbook"]["images_per_second"]
                                            / rows["conventional"]["images_per_second"])
    assert record["flops_per_image"] > 0 and rows["sslbook"]["achieved_flops"] > 0
    assert list(tmp_path.glob("pipeline-*.json"))


def test_the_peak_of_known_gpus_is_looked_up_by_name():
    assert pipeline_benchmark.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert pipeline_benchmark.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert pipeline_benchmark.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert pipeline_benchmark.peak_flops("Some Future GPU") is None


def test_too_few_images_for_two_batches_is_refused():
    with pytest.raises(SystemExit):
        pipeline_benchmark.main(["--images", "16", "--batch-size", "16"])


def test_the_memory_format_benchmark_prints_both_formats_and_their_ratio_per_method(capsys):
    memory_format.main(["--methods", "simclr,jigsaw", "--steps", "1", "--batch-size", "16"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["simclr", "jigsaw"]
    for _, contiguous, channels_last, ratio in rows:
        assert float(ratio) == pytest.approx(float(channels_last) / float(contiguous), rel=0.1)  # ms are rounded
