"""The smoke study on a real single-node SLURM cluster, submitted through profiles/slurm, gives the
results of a local run. The cluster comes from `.ci/slurm/setup.sh` (run as root; `.ci/run` does it);
the study is started in the background by the `slurm_study` fixture (conftest.py)."""
import json
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def slurm_run(slurm_study):
    """(working directory, SLURM run id, environment) of the finished smoke study on the cluster."""
    if isinstance(slurm_study, str):
        pytest.skip(slurm_study)
    slurm_study.wait()
    return slurm_study.workdir, slurm_study.run_id(), slurm_study.env


def slurm_jobs(run_id, env, expected):
    """{SLURM job id: (state, allocated trackable resources)} of a run's jobs, from sacct (the accounting
    database, which may lag a few seconds behind the last job)."""
    for _ in range(30):
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", "now-2days", "--name", run_id,
                              "-o", "JobID,State,AllocTRES"], capture_output=True, text=True, env=env, check=True)
        jobs = {job: (state, tres) for job, state, tres in (line.split("|") for line in out.stdout.splitlines())}
        if set(jobs) >= expected and all(jobs[job][0] == "COMPLETED" for job in expected):
            break
        time.sleep(1)
    return jobs


def node_cpus(env) -> int:
    """CPUs of the test cluster's (one) node."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.split()[0])


def node_gpus(env) -> int:
    """GPUs (gres/gpu) of the test cluster's (one) node."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%G"], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.split()[0].split("(")[0].split(":")[-1])


def submitted_jobs(workdir):
    """{SLURM job id: the rule or group it ran}, from the SLURM logs Snakemake kept."""
    logs = workdir / ".snakemake" / "slurm_logs"
    return {log.stem: log.relative_to(logs).parts[0] for log in logs.rglob("*.log")}


def test_gpu_jobs_are_submitted_with_one_gpu_each_and_shards_in_groups(slurm_run):
    workdir, run_id, env = slurm_run
    submitted = submitted_jobs(workdir)
    jobs = slurm_jobs(run_id, env, set(submitted))
    assert set(jobs) == set(submitted) and all(state == "COMPLETED" for state, _ in jobs.values())
    # no GPU for data preparation and for the batch of RISE's metrics jobs: its maps are scored by
    # localisation metrics only, which read maps and boxes
    cpu_only = {"rule_prepare_dataset", "group_metrics-rise_metrics"}
    # a latency job runs alone on its node (--exclusive), so SLURM allocates it the whole node: every CPU
    # and every GPU (it times on one)
    whole_node = {"cpu": str(node_cpus(env)), "gres/gpu": str(node_gpus(env))}
    for job, name in submitted.items():
        if name == "rule_latency":
            allocated = dict(item.split("=", 1) for item in jobs[job][1].split(","))
            assert {key: allocated.get(key) for key in whole_node} == whole_node, (name, jobs[job])
        else:
            assert ("gres/gpu=1" in jobs[job][1]) == (name not in cpu_only), (name, jobs[job])
    kinds = sorted(submitted.values())
    assert kinds.count("rule_train_model") == 5 and kinds.count("rule_evaluate_model") == 5
    assert kinds.count("rule_latency") == 2
    # ROAR: the anchor, gradcam, its blurred copy and random at 0.5; mask-only controls: gradcam, its blurred
    # copy, the positive control (the true objects) and the negative one (random)
    assert kinds.count("rule_roar") == 4 and kinds.count("rule_roar_leakage") == 4
    # 44 attribute jobs (4 of them the explainers' targets, 6 needing a trained explainer, 2 ROAR's
    # train-split maps) go out as one batch per (split, method), 13, and 8 metrics jobs (every metric of
    # one model's maps of one method) as one batch per method, 5
    batches = [kind for kind in kinds if kind.startswith("group_")]
    assert sum(kind.startswith("group_attribute-") for kind in batches) == 13, batches
    assert sum(kind.startswith("group_metrics-") for kind in batches) == 5, batches
    assert "group_attribute-train-alignment_target_attribute" in batches


def result_files(workdir, pattern="**/*"):
    """Result files under results/ matching ``pattern``, relative to ``workdir`` (logs and benchmarks left out)."""
    files = (path.relative_to(workdir) for path in (workdir / "results").glob(pattern) if path.is_file())
    return sorted(path for path in files if path.parts[1] not in ("logs", "benchmarks"))


def assert_tables_match(ours, local, name, share=1.0):
    """Same columns and rows, equal non-numeric values, and numeric values within 1e-4 of each other
    (HOG similarities: 1e-2) in at least ``share`` of the rows.

    HOG bins each pixel gradient's orientation at hard edges, so float rounding of a map can move one
    gradient into the next bin and shift the Spearman correlation of the HOG features by ~1e-4
    (2e-4 seen), where every other similarity moves by ~1e-6."""
    assert list(ours.columns) == list(local.columns) and len(ours) == len(local), name
    numeric = ours.select_dtypes("number").columns
    pd.testing.assert_frame_equal(ours.drop(columns=numeric), local.drop(columns=numeric), obj=name)
    tolerance = np.array([1e-2 if column.startswith("hog@") else 1e-4 for column in numeric])
    a, b = ours[numeric].to_numpy(float), local[numeric].to_numpy(float)
    close = ((np.abs(a - b) <= tolerance) | (np.isnan(a) & np.isnan(b))).all(axis=1)
    assert close.mean() >= share, f"{name}: rows {np.flatnonzero(~close).tolist()} differ"


def assert_maps_match(ours, local, name):
    """Each image's map (N, H, W) correlates with the local one at >= 0.999 and has its size (L2 norm
    within 1%). Maps usually differ by ~1e-7, but an optimised one (meaningful perturbation) can
    carry that rounding through its iterations to a different local optimum: 0.018 of a [0, 1]
    mask seen, at a correlation of 0.99997."""
    ours, local = ours.reshape(len(ours), -1).astype(np.float64), local.reshape(len(local), -1).astype(np.float64)
    for i, (a, b) in enumerate(zip(ours, local)):
        if np.array_equal(a, b):
            continue
        assert np.corrcoef(a, b)[0, 1] >= 0.999, (name, i)
        assert np.linalg.norm(a) == pytest.approx(np.linalg.norm(b), rel=0.01), (name, i)


def correlation(x, y) -> float:
    """Pearson correlation of two flattened maps (1.0 / 0.0 for equal / unequal constant maps)."""
    return np.corrcoef(x, y)[0, 1] if x.std() and y.std() else float(np.allclose(x, y, atol=1e-3))


def learned(path) -> bool:
    """Whether a result comes from an explainer model or its branch: those models learn maps made by
    tuned jobs, and training carries their float rounding through every step, so they are compared
    by agreement rather than to float rounding."""
    return "explainer" in str(path)


def test_results_equal_a_local_run(slurm_run, smoke_run):
    """Batch sizes and memory layouts are tuned per job from timings, and on a CPU another batch size
    or layout can mean another convolution algorithm, so values agree up to float rounding (below);
    results of the explainer models, which train on such maps, agree more loosely."""
    workdir = slurm_run[0]
    ours, local = set(result_files(workdir)), set(result_files(smoke_run))
    assert ours <= local and local - ours <= {Path("results/report.html")}  # another test makes the report
    for path in result_files(workdir, "evaluation/*.json"):
        ours, local = (pd.DataFrame([json.loads((run / path).read_text())]) for run in (workdir, smoke_run))
        if learned(path):
            assert ours["clean_accuracy"].iloc[0] == pytest.approx(local["clean_accuracy"].iloc[0], abs=0.03), path
        else:
            assert_tables_match(ours, local, str(path))
    models = [pd.read_csv(run / "results" / "tables" / "models.csv") for run in (workdir, smoke_run)]
    assert_tables_match(*(table[table["algorithm"] != "explainer"].reset_index(drop=True) for table in models),
                        "models.csv")
    for path in result_files(workdir, "attributions/**/*.h5"):
        with h5py.File(workdir / path) as ours, h5py.File(smoke_run / path) as local:
            assert np.array_equal(ours["index"][:], local["index"][:]), path
            if learned(path):
                a, b = (maps[:].reshape(len(maps), -1).astype(np.float64) for maps in (ours["maps"], local["maps"]))
                agreement = np.mean([correlation(x, y) for x, y in zip(a, b)])
                if "vgg-explainer_posthoc" in str(path):  # a branch on a fixed backbone
                    assert agreement >= 0.9, path
                else:  # the joint explainer, trained from scratch: the smoke study's 6 epochs leave its
                    # classifier near chance and its maps nearly the same for every image, so two runs'
                    # maps are only required to agree more on the same image than across images
                    across = np.mean([correlation(x, y) for x, y in zip(a, np.roll(b, 1, axis=0))])
                    assert agreement > across, (path, agreement, across)
            else:
                assert_maps_match(ours["maps"][:], local["maps"][:], path)
    # AUCs move by up to ~1e-5; a thresholded map (box IoU, pointing game) can gain or lose a pixel
    # that sat within 1e-7 of the threshold, which changes that image's value (1 of 40 images seen).
    # The statistics computed from these tables (means, correlations, tests, rankings) are checked
    # only for being there (above): they pass such differences on.
    for path in result_files(workdir, "metrics/**/*.parquet"):
        assert_tables_match(pd.read_parquet(workdir / path), pd.read_parquet(smoke_run / path), str(path),
                            0.0 if learned(path) else 0.95)
