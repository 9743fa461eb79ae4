"""One GPU per job: a lock-file pool over the CUDA devices a job can see.

``snakemake --resources gpu=N`` caps how many GPU jobs run at once but does not say which device
each one gets, so without help every job would use ``cuda:0``. A job claims the first free device by
taking an exclusive ``flock`` on ``<lock dir>/gpu-<id>.lock``; the operating system releases it
when the process ends, crash or not. ``<id>`` is the device's entry in ``CUDA_VISIBLE_DEVICES``
when that is set (SLURM sets it per job, so jobs on one node lock their physical devices), else
its index. Without CUDA the job runs on the CPU. ``gpu_usage`` reports how long a process held its
GPU and its peak memory there, for the sidecar next to each rule's benchmark file.
"""
from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: environment variable naming the lock directory (default: <tmp>/robustxai-gpus-<uid>)
LOCK_DIR_VARIABLE = "ROBUSTXAI_GPU_LOCKS"


@dataclass
class _Claim:
    lock_file: object  # kept open for the life of the process: closing it frees the device
    name: str  # the device's lock id (CUDA_VISIBLE_DEVICES entry or index)
    claimed_at: float  # time.perf_counter() when the claim succeeded


_held: dict[int, _Claim] = {}  # device index -> this process's claim


def lock_dir() -> Path:
    """Directory of the pool's lock files."""
    default = Path(tempfile.gettempdir()) / f"robustxai-gpus-{os.getuid()}"
    return Path(os.environ.get(LOCK_DIR_VARIABLE, default))


def device_ids(count: int) -> list[str]:
    """The lock names of the ``count`` visible devices: CUDA_VISIBLE_DEVICES entries, else indices."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[:count] if len(visible) >= count else [str(i) for i in range(count)]


def _try_lock(path: Path):
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def claim_device(count: int | None = None, timeout: float | None = None, poll: float = 2.0) -> torch.device:
    """This process's device: ``cuda:<i>`` for the first of ``count`` visible GPUs (default: all)
    whose lock is free, waiting (``poll`` seconds between tries, at most ``timeout`` seconds, None =
    no limit) while all are taken; the CPU when there is no GPU. A process keeps its device: later
    calls return it again. Raises TimeoutError when no device frees up in time."""
    if _held:
        return torch.device(f"cuda:{next(iter(_held))}")
    count = torch.cuda.device_count() if count is None else count
    if count == 0:
        return torch.device("cpu")
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    ids = device_ids(count)
    started, warned = time.monotonic(), False
    while True:
        for index, name in enumerate(ids):
            handle = _try_lock(directory / f"gpu-{name}.lock")
            if handle is not None:
                _held[index] = _Claim(handle, name, time.perf_counter())
                if torch.cuda.is_available() and index < torch.cuda.device_count():
                    torch.cuda.set_device(index)
                log.info("claimed GPU %s (cuda:%d) from the pool in %s", name, index, directory)
                return torch.device(f"cuda:{index}")
        if timeout is not None and time.monotonic() - started >= timeout:
            raise TimeoutError(f"all {count} GPUs stayed taken for {timeout} s (locks in {directory})")
        if not warned:
            log.warning("all %d GPUs are taken by other jobs; waiting for one (locks in %s)", count, directory)
            warned = True
        time.sleep(poll)


def release_device() -> None:
    """Give this process's device back to the pool (jobs need not call it: exiting releases it)."""
    for claim in _held.values():
        claim.lock_file.close()
    _held.clear()


def gpu_usage() -> dict | None:
    """This process's use of its claimed GPU so far, or None when it claimed none: ``gpu`` (lock id),
    ``device`` (name), ``gpu_s`` (seconds from the claim until all work queued on it had finished;
    the GPU time a scheduler bills), ``peak_allocated_mib`` and ``peak_reserved_mib`` (peak memory
    held by tensors and by torch's caching allocator, MiB)."""
    if not _held:
        return None
    index, claim = next(iter(_held.items()))
    device = torch.device(f"cuda:{index}")
    torch.cuda.synchronize(device)
    mib = 2 ** 20
    return {"gpu": claim.name, "device": torch.cuda.get_device_name(device),
            "gpu_s": round(time.perf_counter() - claim.claimed_at, 4),
            "peak_allocated_mib": round(torch.cuda.max_memory_allocated(device) / mib, 2),
            "peak_reserved_mib": round(torch.cuda.max_memory_reserved(device) / mib, 2)}
