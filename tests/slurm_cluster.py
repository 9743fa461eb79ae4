"""The single-node SLURM cluster of `.ci/slurm/setup.sh`, and the smoke study submitted to it.

The study runs in the background from the start of the test session: most tests use one thread, so
it uses the core they leave idle instead of adding its minutes to the suite.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import yaml

from workflow_runs import ROOT, snakemake_command

CLUSTER = Path(os.environ.get("ROBUSTXAI_SLURM_PREFIX", "/tmp/robustxai-slurm"))
HOW_TO_START = ("start one with `sudo bash .ci/slurm/setup.sh` (installs the Debian packages slurmctld, slurmd, "
                "slurm-client, munge, slurmdbd and mariadb-server; `.ci/run` does this before `make test`)")
#: seconds the study may take (it took 35 min beside the rest of the suite on 2 cores, 2026-11-23); a
#: plugin whose status queries fail would otherwise wait forever
TIME_LIMIT = 3600


def cluster_environment() -> tuple[dict | None, str]:
    """(this process's environment plus the cluster's SLURM_CONF and srun wrapper, "") when the cluster
    at CLUSTER is up, else (None, why not)."""
    env_file = CLUSTER / "env.sh"
    if not env_file.exists():
        return None, f"no SLURM cluster at {CLUSTER}: {HOW_TO_START}"
    dump = subprocess.run(["bash", "-c", f"source {env_file} && env -0"], capture_output=True, text=True, check=True)
    env = dict(line.split("=", 1) for line in dump.stdout.split("\0") if "=" in line)
    try:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"the SLURM cluster at {CLUSTER} does not answer ({error}): {HOW_TO_START}"
    if state.returncode != 0 or not re.search(r"idle|mix|alloc", state.stdout):
        return None, (f"the SLURM cluster at {CLUSTER} is not up (sinfo: {state.stdout.strip()} "
                      f"{state.stderr.strip()[-300:]}): {HOW_TO_START}")
    return env, ""


def site_profile(directory: Path, partition: str) -> Path:
    """profiles/slurm with its placeholders filled in as a user would for this cluster (no accounts here),
    plus settings for a quick test: up to 8 jobs queued (SLURM starts the next as soon as a CPU frees up,
    without waiting for a status check), status checks from 3 s on, successful jobs' SLURM logs kept."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        resources.pop("slurm_account", None)
        if "slurm_partition" in resources:
            resources["slurm_partition"] = partition
    profile.update({"slurm-no-account": True, "jobs": 8, "slurm-init-seconds-before-status-checks": 3,
                    "slurm-keep-successful-logs": True})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile))
    return directory


class SlurmStudy:
    """The smoke study running through ``--profile`` (site_profile) on the cluster, in the background."""

    def __init__(self, root: Path, env: dict) -> None:
        partition = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, env=env,
                                   check=True).stdout.split()[0].rstrip("*")
        self.workdir, self.env, self.output = root / "work", env, root / "snakemake.out"
        command = snakemake_command(self.workdir, "--profile", str(site_profile(root / "profile", partition)))
        with open(self.output, "w") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**env, "XDG_CACHE_HOME": str(root / "cache")})
        self.started = time.monotonic()

    def run_id(self) -> str | None:
        """The SLURM job name the plugin gives all of this run's jobs, once it has printed it."""
        found = re.search(r"SLURM run ID: (\S+)", self.output.read_text())
        return found.group(1) if found else None

    def wait(self) -> str:
        """Wait for the study (within TIME_LIMIT of its start); its output. Raises AssertionError if it failed."""
        try:
            code = self.process.wait(timeout=max(1.0, TIME_LIMIT - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.stop()
            code = f"killed after {TIME_LIMIT} s"
        output = self.output.read_text()
        if code != 0:
            raise AssertionError(f"the SLURM run failed ({code}):\n{output[-6000:]}")
        return output

    def stop(self) -> None:
        """Kill Snakemake if it still runs and cancel the run's SLURM jobs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if run_id := self.run_id():
            subprocess.run(["scancel", "--name", run_id], env=self.env, capture_output=True)
