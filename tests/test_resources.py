"""Memory requests of attribute and metric jobs (robustxai.pipeline.resources) and the log line of a
job whose peak resident memory exceeds its request (robustxai.workflow_io.job_logging)."""
import pytest

from robustxai.pipeline import resources
from robustxai.pipeline.resources import attribute_mem_mb, metric_mem_mb
from robustxai.workflow_io import job_logging

# Peak resident memory (MiB) of whole attribute jobs on the CPU, 32 images, images_per_batch 16, timm
# models with random weights (benchmarks/job_memory.py; docs/scaling.md, "Running at scale")
MEASURED_224 = {"resnet18 smoothgrad": 2106, "resnet18 integrated_gradients": 2146,
                "resnet50 gradient": 2861, "resnet50 smoothgrad": 4346, "resnet50 integrated_gradients": 4322}


def test_requests_never_drop_below_the_former_default_and_grow_with_image_size_batch_and_images():
    assert attribute_mem_mb(32, 16, 100) == metric_mem_mb(32, 100, None) == resources.MIN_MIB == 4000
    assert attribute_mem_mb(224, 16, 100) == 5888
    sizes = [attribute_mem_mb(size, 16, 100) for size in (64, 128, 224, 299, 384)]
    assert sizes == sorted(sizes) and sizes[-1] > 2 * sizes[2] > 2 * resources.MIN_MIB
    assert attribute_mem_mb(224, 128, 100) > attribute_mem_mb(224, 64, 100) > attribute_mem_mb(224, 16, 100)
    assert attribute_mem_mb(224, 16, 5000) > attribute_mem_mb(224, 16, 1000) > attribute_mem_mb(224, 16, 100)
    # a configured method batch counts, "auto" is tuning's CPU default
    assert attribute_mem_mb(224, 16, 100, batch_size=128) > attribute_mem_mb(224, 16, 100, batch_size="auto")
    assert attribute_mem_mb(224, 16, 100, batch_size=4) < attribute_mem_mb(224, 16, 100)
    assert attribute_mem_mb(224, 16, 100, pass_kind="forward") < attribute_mem_mb(224, 16, 100)
    assert metric_mem_mb(224, 2000, None) < metric_mem_mb(224, 2000, "forward") < metric_mem_mb(224, 2000, "gradient")
    assert metric_mem_mb(224, 50000, None) > 50000 * 224 * 224 * 16 / 2**20  # every scored image and map


def test_requests_cover_the_measured_peaks_of_gradient_jobs_at_224_px():
    request = attribute_mem_mb(224, 16, 32)
    assert all(request > 1.2 * peak for peak in MEASURED_224.values()), (request, MEASURED_224)


def test_auto_batches_are_the_tuning_defaults_on_the_cpu():
    from robustxai.tuning import DEFAULT_BATCH_SIZES

    assert resources.INPUTS_PER_PASS == DEFAULT_BATCH_SIZES["cpu"]


def test_a_job_past_its_memory_request_says_so_in_its_log(tmp_path):
    log = tmp_path / "job.log"
    with job_logging(str(log), mem_mb=1):
        pass
    text = log.read_text()
    assert "WARNING" in text and "exceeded the job's request mem_mb=1: SLURM kills a job past its request; " \
        "set resources.<stage>.mem_mb in the config to at least" in text
    with job_logging(str(log), mem_mb=10**7):
        pass
    text = log.read_text()
    assert "WARNING" not in text and "of mem_mb=10000000 requested" in text
    with pytest.raises(RuntimeError), job_logging(str(log), mem_mb=1):
        raise RuntimeError("boom")
    assert "exceeded the job's request mem_mb=1" in log.read_text()  # said also when the job fails
