"""One run at a time per results folder (issue 24 row 4)."""
import json
import os
import subprocess
import sys

import pytest

from robustxai.results_lock import LOCK_NAME, ResultsLockedError, acquire, release


def test_a_second_run_on_the_same_results_folder_is_refused_naming_the_first(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "results").mkdir()
        (tmp_path / "results" / LOCK_NAME).write_text(json.dumps(
            {"pid": other.pid, "host": os.uname().nodename, "started": "2026-12-07 05:00:00",
             "workdir": "/checkout/a", "configfiles": ["a.yaml"]}))
        with pytest.raises(ResultsLockedError, match=rf"results is in use by another run \(pid {other.pid} on .*, "
                                                     r"working directory /checkout/a, configs \['a\.yaml'\]\)"):
            acquire(tmp_path / "results", {"workdir": "/checkout/b"})
        release(tmp_path / "results")  # not ours: kept
        assert (tmp_path / "results" / LOCK_NAME).exists()
    finally:
        other.kill()
        other.wait()
    # the first run is gone: its lock is taken over, then released by its new holder
    path = acquire(tmp_path / "results", {"workdir": "/checkout/b"})
    assert json.loads(path.read_text())["pid"] == os.getpid()
    release(tmp_path / "results")
    assert not path.exists()


def test_overlapping_workflow_runs_from_two_working_directories_are_refused(tmp_path):
    from workflow_runs import ROOT, snakemake_command

    import yaml

    shared = tmp_path / "shared_results"
    config = yaml.safe_load((ROOT / "tests" / "configs" / "smoke.yaml").read_text())
    config["results"] = str(shared)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    shared.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (shared / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                                    "workdir": str(tmp_path / "a")}))
        (tmp_path / "b").mkdir()
        run = subprocess.run(snakemake_command(tmp_path / "b", f"{shared}/data/builtin/test.h5", config=path),
                             capture_output=True, text=True, timeout=600)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode != 0
    assert f"{shared} is in use by another run (pid {holder.pid}" in run.stdout + run.stderr
    assert not (shared / "data").exists()
