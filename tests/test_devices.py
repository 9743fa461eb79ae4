"""The GPU pool hands each process its own device and gets it back when the process dies."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from robustxai import devices
from robustxai.workflow_io import job_logging


@pytest.fixture
def pool(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.LOCK_DIR_VARIABLE, str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    devices.release_device()
    yield tmp_path
    devices.release_device()


def claim_in_child(count, hold_seconds, lock_dir):
    code = (f"import time; from robustxai.devices import claim_device; "
            f"print(claim_device({count}, timeout=0.2, poll=0.05), flush=True); time.sleep({hold_seconds})")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, devices.LOCK_DIR_VARIABLE: str(lock_dir)})


def test_each_process_gets_its_own_gpu_and_a_killed_job_frees_it(pool):
    assert devices.claim_device(2) == torch.device("cuda:0")
    assert devices.claim_device(2) == torch.device("cuda:0")  # a process keeps its device
    child = claim_in_child(2, 600, pool)  # held until killed below, however slowly the third child starts
    assert child.stdout.readline().strip() == "cuda:1"
    third = claim_in_child(2, 0, pool)
    assert third.wait(timeout=600) != 0  # both taken: TimeoutError (a starved machine can take minutes to import torch)
    child.send_signal(signal.SIGKILL)
    child.wait()
    again = claim_in_child(2, 0, pool)
    assert again.stdout.readline().strip() == "cuda:1" and again.wait(timeout=600) == 0


def test_without_gpus_jobs_run_on_the_cpu(pool):
    assert devices.claim_device(0) == torch.device("cpu")
    assert not list(pool.iterdir())


def test_slurm_devices_are_locked_by_their_physical_ids(pool, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert devices.device_ids(2) == ["3", "5"]
    assert devices.claim_device(2) == torch.device("cuda:0") and (pool / "gpu-3.lock").exists()


def test_waiting_for_a_device_times_out(pool):
    holder = claim_in_child(1, 30, pool)
    assert holder.stdout.readline().strip() == "cuda:0"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="all 1 GPUs stayed taken"):
        devices.claim_device(1, timeout=0.3, poll=0.05)
    assert time.monotonic() - started < 5
    holder.kill()
    holder.wait()


def read_tsv(path):
    header, row = path.read_text().splitlines()
    return dict(zip(header.split("\t"), row.split("\t")))


def test_a_gpu_job_writes_its_gpu_time_and_peak_memory_next_to_its_benchmark(pool, tmp_path, monkeypatch):
    mib = 2 ** 20
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 300 * mib)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 512.5 * mib)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    sidecar = tmp_path / "job.gpu.tsv"
    with job_logging(str(tmp_path / "job.log"), gpu_usage_path=str(sidecar)):
        devices.claim_device(1)
        time.sleep(0.2)
    usage = read_tsv(sidecar)
    assert usage["gpu"] == "7" and usage["device"] == "Fake GPU"
    assert 0.2 <= float(usage["gpu_s"]) < 5
    assert float(usage["peak_allocated_mib"]) == 300 and float(usage["peak_reserved_mib"]) == 512.5
    assert "GPU usage" in (tmp_path / "job.log").read_text()


def test_a_cpu_job_leaves_no_gpu_sidecar_and_removes_a_stale_one(pool, tmp_path):
    sidecar = tmp_path / "job.gpu.tsv"
    sidecar.write_text("gpu\tgpu_s\n0\t9\n")
    with job_logging(str(tmp_path / "job.log"), gpu_usage_path=str(sidecar)):
        assert devices.claim_device(0) == torch.device("cpu")
    assert devices.gpu_usage() is None and not sidecar.exists()


def test_a_failed_gpu_job_writes_no_sidecar(pool, tmp_path):
    sidecar = tmp_path / "job.gpu.tsv"
    with pytest.raises(RuntimeError), job_logging(str(tmp_path / "job.log"), gpu_usage_path=str(sidecar)):
        devices.claim_device(1)
        raise RuntimeError("out of memory")
    assert not sidecar.exists() and "out of memory" in (tmp_path / "job.log").read_text()
