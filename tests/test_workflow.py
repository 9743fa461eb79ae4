"""End-to-end tests of the Snakemake workflow (the smoke study takes about a minute on 2 cores)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from robustxai.data.download import file_digest
from robustxai.data.imagenet_ood.lists import imagenet_wnids
from robustxai.data.splits import load_split
from test_loaders import make_cifar_archive, make_tinyimagenet_zip, write_voc
from workflow_runs import ROOT, SMOKE, make_local_inputs, snakemake, snakemake_command

pytestmark = pytest.mark.workflow


def planned_jobs(output):
    """(rule, model wildcard or None) for each job of a dry run's output."""
    jobs, rule = [], None
    for line in output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            rule = m.group(1)
            jobs.append([rule, None])
        elif (m := re.match(r"^wildcards: (?:.*, )?model=([^,\s]+)", line.strip())) and jobs:
            jobs[-1][1] = m.group(1)
    return sorted(tuple(job) for job in jobs)


def output_methods(output, model):
    """Methods of the planned attribute jobs of ``model`` in a dry run's output."""
    return set(re.findall(rf"model={re.escape(model)}, method=(\w+)", output))


def test_smoke_study_table_values(smoke_run):
    table = pd.read_csv(smoke_run / "results" / "tables" / "models.csv").set_index("model")
    assert list(table.index) == ["vgg-vanilla", "vgg-pgd_l2", "vgg-advprop", "vgg-explainer", "vgg-explainer_posthoc"]
    assert table["algorithm"].tolist() == ["vanilla", "adversarial", "advprop", "explainer", "explainer"]
    assert table["study"].tolist() == ["A", "A", "A", "B", "B"]  # the twins are attributed in the first study
    accuracy_columns = ["clean_accuracy", "ood_accuracy_ood_background", "ood_accuracy_ood_corruption",
                        "ood_accuracy", "robust_accuracy_linf_8"]
    values = table[accuracy_columns].to_numpy()
    assert ((0 <= values) & (values <= 1)).all()
    assert table.loc["vgg-vanilla", "clean_accuracy"] > 0.3  # chance is 0.1
    assert (table["robust_accuracy_linf_8"] <= table["clean_accuracy"] + 0.05).all()
    assert np.allclose(table["ood_accuracy"], table[["ood_accuracy_ood_background", "ood_accuracy_ood_corruption"]].mean(axis=1))
    assert (table["confidence_median"] > 0.1).all() and (table["ece"] >= 0).all()
    # same architecture, same cost; AdvProp's auxiliary BNs were stripped before saving; the explainers'
    # branches add parameters but no classifier MACs
    assert table["params"].iloc[:3].nunique() == 1 and table["macs"].nunique() == 1 and table["params"].iloc[0] == 72954
    assert (table["params"].iloc[3:] > 72954).all()
    assert (table["test_images"] == 300).all() and (table["robust_images"] == 100).all()
    assert (smoke_run / "results" / "plots" / "accuracy.png").stat().st_size > 10_000
    plotted = pd.read_csv(smoke_run / "results" / "plots" / "accuracy.csv")
    assert set(plotted["kind"]) == {"clean", "OOD (mean)", "robust linf_8"} and len(plotted) == 15


def test_training_logs_history_and_progress(smoke_run):
    history = pd.read_csv(smoke_run / "results" / "models" / "vgg-vanilla.history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert {"loss", "train_accuracy", "val_accuracy", "lr", "seconds"} <= set(history.columns)
    log = (smoke_run / "results" / "logs" / "train" / "vgg-pgd_l2.log").read_text()
    assert "epoch 6/6" in log and ("it/s" in log or "s/it" in log)  # tqdm bars went into the log
    assert not list((smoke_run / "results" / "models").glob("*.resume"))
    assert (smoke_run / "results" / "benchmarks" / "train" / "vgg-advprop.tsv").exists()


def test_editing_one_model_reruns_only_its_jobs(smoke_run, tmp_path):
    config = yaml.safe_load(SMOKE.read_text())
    config["models"]["vgg-pgd_l2"]["training"] = {"epochs": 7}
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))  # also sorts keys: order must not matter
    assert "Nothing to be done" in snakemake(smoke_run, "-n").stdout
    jobs = planned_jobs(snakemake(smoke_run, "-n", config=edited).stdout)
    # its own jobs (8 methods x 2 shards and its 2 alignment-target shards, the metrics jobs of its 2
    # scored methods, its map grid); the jobs that read its checkpoint or targets: vgg-vanilla's maps
    # taken from it, the explainer that learns its targets (training, evaluation, maps, 1 metrics job) and the maps
    # vgg-vanilla borrows from that explainer, their grids and the latency rows of both timed models;
    # and the study-wide aggregation
    assert jobs == [("aggregate_models", None), ("all", None), ("analyse", None)] + \
        [("attribute", "vgg-explainer")] * 2 + [("attribute", "vgg-pgd_l2")] * 18 + \
        [("attribute", "vgg-vanilla")] * 4 + \
        [("evaluate_model", "vgg-explainer"), ("evaluate_model", "vgg-pgd_l2"), ("explainability_table", None),
         ("findings", None), ("latency", "vgg-explainer"), ("latency", "vgg-vanilla"), ("latency_table", None),
         ("map_grid", "vgg-explainer"), ("map_grid", "vgg-pgd_l2"), ("map_grid", "vgg-vanilla")] + \
        [("metrics", "vgg-explainer")] + [("metrics", "vgg-pgd_l2")] * 2 + \
        [("report_pages", None), ("summary_plots", None), ("train_model", "vgg-explainer"),
         ("train_model", "vgg-pgd_l2")]
    assert output_methods(snakemake(smoke_run, "-n", config=edited).stdout, "vgg-vanilla") == \
        {"smoothgrad_of_robust", "explainer_of_robust_aligned"}


def test_attribution_shards_hold_maps_and_provenance(smoke_run):
    from robustxai.attribution.shards import read_shard

    root = smoke_run / "results" / "attributions" / "builtin" / "test"
    checkpoint = smoke_run / "results" / "models" / "vgg-vanilla.pt"
    for method in ("gradient", "gradcam", "rise"):
        shards = [read_shard(root / "vgg-vanilla" / method / f"shard-{k}.h5") for k in (0, 1)]
        assert [s.index.tolist() for s in shards] == [list(range(20)), list(range(20, 40))]
        for shard in shards:
            assert shard.maps.shape == (20, 32, 32) and np.isfinite(shard.maps).all()
            assert shard.attrs["method"] == method and shard.attrs["checkpoint_sha256"] == file_digest(checkpoint)
            assert shard.attrs["images_per_second"] > 0 and "torch" in shard.attrs["provenance"]["versions"]
            assert np.array_equal(shard.target, shard.predicted)  # target: predicted
            assert np.allclose(shard.probs.sum(1), 1, atol=1e-5)
    assert read_shard(root / "vgg-vanilla" / "rise" / "shard-0.h5").attrs["settings"] == {"cells": 4, "masks": 200}
    bsm = read_shard(root / "vgg-vanilla" / "bsm" / "shard-0.h5")
    assert bsm.extras["boundary_distance"].shape == (20,) and (bsm.extras["boundary_distance"] > 0).all()
    assert bsm.attrs["boundary_success_rate"] == pytest.approx(bsm.extras["boundary_success"].mean())
    assert bsm.attrs["boundary_success_rate"] > 0.5  # a 6-epoch vanilla model is easy to flip
    assert not (root / "vgg-advprop").exists()  # only the models the section names


def read_metric(smoke_run, model, method, metric):
    return pd.read_parquet(smoke_run / "results" / "metrics" / "builtin" / model / method / f"{metric}.parquet")


def test_metric_tables_hold_per_image_values_and_rank_gradcam_above_random(smoke_run):
    energy = {m: read_metric(smoke_run, "vgg-vanilla", m, "energy_in_box") for m in ("gradcam", "rise", "random")}
    for table in energy.values():
        assert list(table.columns[:5]) == ["image", "target", "predicted", "confidence", "degenerate"]
        assert table["image"].tolist() == list(range(40)) and table["energy_in_box"].between(0, 1).all()
    assert energy["gradcam"]["energy_in_box"].mean() > energy["random"]["energy_in_box"].mean() + 0.1
    deletion = {m: read_metric(smoke_run, "vgg-vanilla", m, "deletion")["deletion"].mean() for m in ("gradcam", "random")}
    insertion = {m: read_metric(smoke_run, "vgg-vanilla", m, "insertion")["insertion"].mean() for m in ("gradcam", "random")}
    assert deletion["gradcam"] < deletion["random"] and insertion["gradcam"] > insertion["random"]
    shard_probs = read_shard_probs(smoke_run, "vgg-vanilla", "gradcam")
    assert np.allclose(energy["gradcam"]["confidence"], shard_probs, atol=1e-6)
    sanity = read_metric(smoke_run, "vgg-vanilla", "gradient", "sanity_randomisation")
    assert len(sanity) == 8 and sum(c.startswith("ssim@") for c in sanity.columns) == 3
    alignment = read_metric(smoke_run, "vgg-vanilla", "gradient", "boundary_alignment")
    assert len(alignment) == 16 and alignment["boundary_alignment"].dropna().between(-1, 1).all()
    assert not (smoke_run / "results" / "metrics" / "builtin" / "vgg-pgd_l2" / "gradcam" / "box_iou.parquet").exists()


def test_aggregation_tables_plots_findings_and_report(smoke_run):
    results = smoke_run / "results"
    table = pd.read_csv(results / "tables" / "explainability.csv")
    pairs = {(m, k) for m in ("vgg-vanilla", "vgg-pgd_l2") for k in ("gradcam", "random")}
    pairs |= {("vgg-vanilla", "rise"), ("vgg-vanilla", "gradient")}
    assert set(zip(table["model"], table["method"])) == pairs and len(table) == len(pairs)  # the first study only
    second = pd.read_csv(results / "tables" / "explainer_explainability.csv")
    assert set(zip(second["model"], second["method"])) == {("vgg-explainer", "explainer"),
                                                           ("vgg-explainer_posthoc", "explainer")}
    assert list(second.columns[:3]) == ["model", "method", "family"] and set(second["family"]) == {"learned"}
    per_image = pd.read_parquet(results / "tables" / "per_image.parquet")
    assert set(per_image.loc[per_image["study"] == "B", "model"]) == {"vgg-explainer", "vgg-explainer_posthoc"}
    for column in ("insertion", "deletion", "energy_in_box", "pointing_game", "boundary_alignment"):
        present = table.dropna(subset=[column])
        assert (present[f"{column}_ci_low"] <= present[column] + 1e-12).all()
        assert (present[column] <= present[f"{column}_ci_high"] + 1e-12).all()
    insertion = read_metric(smoke_run, "vgg-pgd_l2", "gradcam", "insertion")["insertion"].mean()
    row = table.set_index(["model", "method"]).loc[("vgg-pgd_l2", "gradcam")]
    assert row["insertion"] == pytest.approx(insertion) and row["family"] == "cam"
    models = pd.read_csv(results / "tables" / "models.csv").set_index("model")
    assert row["clean_accuracy"] == pytest.approx(models.loc["vgg-pgd_l2", "clean_accuracy"])

    across = pd.read_csv(results / "correlations" / "across_models.csv")
    model_level = across[across["method"] == "-"]
    assert (model_level["n"] == 3).all() and {"spearman", "pearson"} == set(model_level["kind"])  # the first study's
    within = pd.read_csv(results / "correlations" / "within_models.csv").dropna(subset=["r"])
    assert within["r"].between(-1, 1).all() and (within["ci_low"] <= within["r"] + 1e-12).all()
    assert set(within[within["model"] == "vgg-vanilla"]["y"]) >= {"insertion", "deletion"}
    ranking = pd.read_csv(results / "tables" / "method_ranking.csv")
    assert ranking["method"].tolist().index("gradcam") < ranking["method"].tolist().index("random")
    agreement = pd.read_csv(results / "tables" / "ranking_agreement.csv")
    assert agreement["kendalls_w"].dropna().between(0, 1).all() and "all" in set(agreement["model"])
    comparisons = pd.read_csv(results / "tables" / "group_comparisons.csv")
    assert set(comparisons["group_a"]) == {"vanilla"} and set(comparisons["group_b"]) == {"adversarial"}
    assert (comparisons["n"] == 40).all()  # paired per image

    findings = (results / "findings.md").read_text()
    verdicts = re.findall(r"^\| (\d) \| .* \| \*\*(reproduced|not reproduced|inconclusive)\*\* \|$", findings, re.M)
    assert [number for number, _ in verdicts] == ["1", "2", "3", "4", "5"]
    assert dict(verdicts)["2"] == "inconclusive"  # the smoke study attributes no AdvProp model
    first, second_section = findings.split("# The second study's findings")
    assert "Models: `vgg-vanilla`, `vgg-pgd_l2`, `vgg-advprop`; methods: " in first
    assert not re.search(r"\bexplainer\b|smoothgrad_of_robust|explainer_of_robust_aligned", first)
    assert "Models: `vgg-explainer`, `vgg-explainer_posthoc`; methods: " in second_section

    for plot in ("heatmap", "confidence", "tradeoff", "sanity"):
        assert (results / "plots" / f"{plot}.png").stat().st_size > 10_000
        assert len(pd.read_csv(results / "plots" / f"{plot}.csv")) > 0
    sanity = pd.read_csv(results / "plots" / "sanity.csv")
    assert sorted(sanity["step"].unique()) == [1, 2, 3] and set(sanity["method"]) == {"gradient", "gradcam"}
    grid = np.load(results / "plots" / "maps" / "vgg-vanilla.npz")
    assert grid["images"].shape == (4, 3, 32, 32) and grid["map_lime"].shape == (4, 32, 32)

    # the report's HTML pages (its viewer shows HTML inline; markdown and CSV only as downloads)
    findings_page = (results / "report" / "findings.html").read_text()
    assert findings_page.count("<h2>") == findings.count("\n## ") > 0  # one heading per finding
    assert findings_page.count("<table>") == findings.count("| # | finding | verdict |")  # each study's verdicts
    tables_page = (results / "report" / "tables.html").read_text()
    for title in ("Models", "Explainability per (model, method)", "Method ranking", "Latency",
                  "ROAR (remove and retrain)", "ROAR mask-only controls"):
        assert f">{title}</h2>" in tables_page, title
    snakemake(smoke_run, "--report", str(results / "report.html"))
    assert (results / "report.html").stat().st_size > 100_000


def read_shard_probs(smoke_run, model, method):
    from robustxai.attribution.shards import read_shard

    root = smoke_run / "results" / "attributions" / "builtin" / "test" / model / method
    shards = [read_shard(root / f"shard-{k}.h5") for k in (0, 1)]
    return np.concatenate([s.probs[np.arange(len(s.target)), s.target] for s in shards])


def test_robust_counterpart_maps_come_from_the_twin(smoke_run):
    import torch

    from robustxai.attribution import make_method
    from robustxai.attribution.shards import read_shard
    from robustxai.models import load_checkpoint

    shard = read_shard(smoke_run / "results" / "attributions" / "builtin" / "test" / "vgg-vanilla" / "smoothgrad_of_robust"
                       / "shard-1.h5")
    assert shard.attrs["registered_method"] == "robust_counterpart"
    twin, _ = load_checkpoint(smoke_run / "results" / "models" / "vgg-pgd_l2.pt")
    images, _ = load_split(smoke_run / "results" / "data" / "builtin" / "test.h5").tensors()
    expected = make_method("smoothgrad", samples=8).explain(twin, images[shard.index], torch.from_numpy(shard.target))
    # the job ran in its tuned memory layout and batch size: float rounding (~1e-9 here), which can flip a
    # max-pool tie and move a single gradient entry further (1.3e-4 of a 0.44 maximum seen)
    expected = expected.numpy()
    assert np.isclose(shard.maps, expected, atol=1e-5).mean() > 0.99  # 99.89 % seen
    assert all(np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999 for a, b in zip(shard.maps, expected))


def test_adding_a_method_adds_only_its_jobs(smoke_run, tmp_path):
    config = yaml.safe_load(SMOKE.read_text())
    config["attribution"]["methods"]["input_x_gradient"] = {}
    edited = tmp_path / "more.yaml"
    edited.write_text(yaml.safe_dump(config))
    output = snakemake(smoke_run, "-n", config=edited).stdout
    jobs = planned_jobs(output)
    # its maps, the map grids that show them and the latency of the timed model it explains (and the
    # findings, whose second part reads the latency table); no metric scores it, so no metric table changes
    assert jobs == [("all", None)] + [("attribute", "vgg-pgd_l2")] * 2 + [("attribute", "vgg-vanilla")] * 2 + \
        [("findings", None), ("latency", "vgg-vanilla"), ("latency_table", None), ("map_grid", "vgg-pgd_l2"),
         ("map_grid", "vgg-vanilla"), ("report_pages", None)]
    assert output.count("method=input_x_gradient") == 4


def most_jobs_at_once(output, rule):
    """The largest number of ``rule``'s jobs running at the same time, from the order in which
    Snakemake's output starts ('rule X: ... jobid: N') and finishes ('Finished jobid: N') jobs."""
    running, most, rule_of_next_job, ours = 0, 0, None, set()
    for line in output.splitlines():
        line = line.strip()
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            rule_of_next_job = m.group(1)
        elif (m := re.match(r"^jobid: (\d+)", line)) and rule_of_next_job == rule:
            ours.add(m.group(1))
            running += 1
            most = max(most, running)
        elif (m := re.match(r"^Finished jobid: (\d+)", line)) and m.group(1) in ours:
            running -= 1
    return most


def test_gpu_resources_cap_how_many_gpu_jobs_run_at_once(smoke_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(smoke_run, workdir)
    shards = sorted(str(path.relative_to(workdir))
                    for method in ("gradient", "random")
                    for path in (workdir / "results" / "attributions" / "builtin" / "test").glob(f"*/{method}/*.h5"))
    assert len(shards) == 8
    result = snakemake(workdir, "--cores", "8", "--resources", "gpu=2", "--forcerun", *shards, "--", *shards)
    output = result.stdout + result.stderr
    assert output.count("Finished jobid") == 8
    assert most_jobs_at_once(output, "attribute") == 2  # 8 cores would run all 8 at once without the cap


def test_explainer_study_end_to_end(smoke_run):
    """The second study: targets of the train split, joint and post-hoc explainers, their maps, the
    last-block sanity check and the latency table."""
    import torch

    from robustxai.attribution.shards import read_shard
    from robustxai.models import load_checkpoint

    results = smoke_run / "results"
    train = load_split(results / "data" / "builtin" / "train.h5")
    for twin in ("vgg-pgd_l2", "vgg-vanilla"):  # the robust and the standard alignment's targets
        shards = [read_shard(results / "attributions" / "builtin" / "train" / twin / "alignment_target" / f"shard-{k}.h5")
                  for k in (0, 1)]
        assert np.concatenate([s.index for s in shards]).tolist() == list(range(len(train)))
        assert np.array_equal(np.concatenate([s.target for s in shards]), train.labels)  # the true label
        maps = np.concatenate([s.maps for s in shards])
        assert maps.min() >= 0 and np.allclose(maps.max((1, 2)), 1)  # magnitude, divided by its max per image
        assert shards[0].attrs["channel_rule"] == "abs_mean over channels, then per-image max scaling"
        assert shards[0].attrs["settings"] == {"samples": 4, "noise": 0.15, "reduction": "abs_mean", "normaliser": "max"}
        assert shards[0].attrs["target_kind"] == "label"
    joint, payload = load_checkpoint(results / "models" / "vgg-explainer.pt")
    assert payload["explainer"]["strides"] == [2, 2, 1, 1] and payload["meta"]["algorithm"] == "explainer"
    history = pd.read_csv(results / "models" / "vgg-explainer.history.csv")
    assert history["alignment_loss"].iloc[-1] < history["alignment_loss"].iloc[0]
    posthoc, _ = load_checkpoint(results / "models" / "vgg-explainer_posthoc.pt")
    vanilla, _ = load_checkpoint(results / "models" / "vgg-vanilla.pt")
    assert all(torch.equal(v, vanilla.net.state_dict()[k]) for k, v in posthoc.net.state_dict().items())  # frozen

    images, _ = load_split(results / "data" / "builtin" / "test.h5").tensors()
    own = read_shard(results / "attributions" / "builtin" / "test" / "vgg-explainer" / "explainer" / "shard-1.h5")
    borrowed = read_shard(results / "attributions" / "builtin" / "test" / "vgg-vanilla" / "explainer_of_robust_aligned"
                          / "shard-1.h5")
    with torch.no_grad():
        expected = joint.explain(images[own.index])[:, 0].numpy()
    assert np.allclose(own.maps, expected, atol=1e-5) and np.allclose(borrowed.maps, expected, atol=1e-5)
    assert (own.maps >= 0).all() and own.attrs["registered_method"] == "explainer"

    sanity = read_metric(smoke_run, "vgg-explainer", "explainer", "sanity_last_block")
    assert len(sanity) == 8 and "ssim@1_net.features.17" in sanity.columns  # the VGG's last conv
    latency = pd.read_csv(results / "tables" / "latency.csv")
    rows = latency[latency["model"] == "vgg-explainer"].set_index("method")
    assert set(rows.index) == {"explainer", "occlusion"} and set(latency["model"]) == {"vgg-vanilla", "vgg-explainer"}
    assert rows.loc["explainer", "ratio_batch1"] < rows.loc["occlusion", "ratio_batch1"] / 10  # 1 pass vs 226 (batched)
    assert (latency["threads"] == 1).all() and (results / "plots" / "latency.png").stat().st_size > 10_000


def test_roar_cells_controls_table_and_road_on_the_smoke_study(smoke_run):
    """ROAR on the smoke study: every cell retrained on exactly half of each image's pixels replaced,
    the anchor beside the model's own accuracy, a mask-only control per cell (a cell whose control leaks is not
    retrained), the table, the plot and
    the second findings section; ROAD columns in the metric tables."""
    import json

    from robustxai.attribution.shards import read_shard
    from robustxai.pipeline.metrics import table_metadata

    results = smoke_run / "results"
    roar = results / "roar" / "builtin" / "vgg-vanilla"
    train = load_split(results / "data" / "builtin" / "train.h5")
    cells = {path.parent.name: json.loads(path.read_text()) for path in roar.glob("*/0.5-0.json")}
    assert set(cells) == {"gradcam", "gradcam_blurred", "random"}
    for name, cell in cells.items():  # roar.leaking_cells: skip (the default): a cell whose control leaks is not retrained
        if json.loads((roar / name / "0.5-leakage.json").read_text())["leaked"]:
            assert np.isnan(cell["accuracy"]) and cell["history"] == [] and "control leaks" in cell["skipped"]
            continue
        assert "skipped" not in cell
        assert cell["removed_share"] == 0.5 and cell["train_images"] == 600 and cell["test_images"] == 40
        assert len(cell["history"]) == 3 and cell["recipe"]["training"]["epochs"] == 3  # shortened recipe
        assert np.allclose(cell["fill"], train.tensors()[0][:600].mean((0, 2, 3)).numpy(), atol=1e-6)
    assert cells["gradcam_blurred"]["blur_sigma"] == 1.0 and cells["gradcam"]["blur_sigma"] is None
    assert not json.loads((roar / "random" / "0.5-leakage.json").read_text())["leaked"]  # the negative control
    anchor = json.loads((roar / "unmodified" / "0-0.json").read_text())
    assert anchor["removed_share"] == 0 and anchor["accuracy"] > 0.1  # above chance (10 classes)
    # the ROAR maps of the train split: one shard of 600 images, explaining each model's prediction
    shard = read_shard(results / "attributions" / "builtin" / "train" / "vgg-vanilla" / "gradcam" / "shard-0.h5")
    assert shard.index.tolist() == list(range(600)) and shard.attrs["target_kind"] == "predicted"
    leakage = json.loads((roar / "gradcam" / "0.5-leakage.json").read_text())
    assert {"accuracy", "accuracy_low", "chance", "leaked"} <= set(leakage) and leakage["images"] == 40

    table = pd.read_csv(results / "tables" / "roar.csv")
    assert len(table) == 6 and set(table["fraction"]) == {0.0, 0.5}  # 3 rows x (anchor, 0.5)
    anchors = table[table["fraction"] == 0]
    assert (anchors["accuracy"] == anchor["accuracy"]).all() and anchors["model_test_accuracy"].notna().all()
    cut = table[table["fraction"] == 0.5].set_index("method")
    assert cut.loc["random", "accuracy"] == pytest.approx(cells["random"]["accuracy"])
    assert cut["leakage_accuracy"].notna().all() and (results / "plots" / "roar.png").stat().st_size > 10_000
    findings = (results / "findings.md").read_text()
    assert "# The second study's findings" in findings and "| d | The learned explainer is the fastest" in findings

    road = read_metric(smoke_run, "vgg-vanilla", "gradcam", "road")
    assert len(road) == 40 and {"road_morf", "road_lerf", "road_morf_prob_0.2", "road_lerf_correct_0.5"} <= set(road)
    assert road["road_morf"].between(0, 1).all()
    about = table_metadata(results / "metrics" / "builtin" / "vgg-vanilla" / "gradcam" / "road.parquet")
    assert about["metric"] == "road" and about["ranking"] == {"ranking": "pixel", "reduction": "sum", "tie_break_seed": 0}
    assert about["settings"]["fractions"] == [0.2, 0.5] and "torch" in about["versions"]


def test_changing_one_roar_fraction_reruns_only_its_cells(smoke_run, tmp_path):
    config = yaml.safe_load(SMOKE.read_text())
    config["roar"]["fractions"] = [0.6]
    edited = tmp_path / "fraction.yaml"
    edited.write_text(yaml.safe_dump(config))
    output = snakemake(smoke_run, "-n", config=edited).stdout
    # the three rows' cells and controls at 0.6, and the leakage check's positive control there; no maps, no
    # anchor, no other stage
    assert planned_jobs(output) == [("all", None), ("findings", None), ("report_pages", None)] + \
        [("roar", "vgg-vanilla")] * 3 + \
        [("roar_leakage", "vgg-vanilla")] * 4 + [("roar_table", None)]
    assert output.count("fraction=0.6") == 7 and "method=unmodified" not in output
    assert output.count("method=true_objects") == 1


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_a_bad_config_stops_with_a_message_naming_the_key(tmp_path):
    config = yaml.safe_load(SMOKE.read_text())
    config["models"]["vgg-vanilla"]["epochs"] = 3  # belongs under training:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", config=bad, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "config.models.vgg-vanilla: unknown key(s) ['epochs']; allowed: ['algorithm', " in output
    assert "properties" not in output  # the key and the allowed ones, not the schema


@pytest.mark.parametrize("config_name", ["configs/cifar10.yaml", "configs/imagenet.yaml", "configs/tinyimagenet.yaml"])
def test_real_scale_configs_dry_run_clean(tmp_path, config_name):
    from robustxai.config import load_config, resolve_attribution, resolve_metrics

    make_local_inputs([ROOT / config_name], tmp_path)  # empty folders where the config reads local data
    result = snakemake(tmp_path, "-n", config=ROOT / config_name)
    assert "evaluate_model" in result.stdout and "aggregate_models" in result.stdout and "rule metrics:" in result.stdout
    config = load_config(ROOT / config_name)
    planned = resolve_metrics(config, resolve_attribution(config))  # what the planned metrics jobs score
    box_metrics = [m for m in ("pointing_game", "energy_in_box", "box_iou") if m in planned]
    assert box_metrics == ([] if "cifar10" in config_name else ["pointing_game", "energy_in_box"]
                           + (["box_iou"] if config_name == "configs/imagenet.yaml" else []))  # CIFAR-10 has no boxes


def test_a_config_whose_local_data_are_missing_is_refused_before_planning_naming_each_key(tmp_path):
    result = snakemake(tmp_path, "-n", config=ROOT / "configs" / "imagenet.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Job stats" not in output
    assert "dataset.imagefolder.splits.test.images: no data/imagenet/val" in output
    assert "dataset.imagefolder.ood.imagenet_a.images: no data/imagenet-a" in output
    made = make_local_inputs([ROOT / "configs" / "imagenet.yaml"], tmp_path)
    made[0].rmdir()  # the test images alone missing: named alone
    result = snakemake(tmp_path, "-n", config=ROOT / "configs" / "imagenet.yaml", check=False)
    output = result.stdout + result.stderr
    assert "dataset.imagefolder.splits.test.images: no data/imagenet/val;" not in output
    assert "dataset.imagefolder.splits.test.images: no data/imagenet/val (" in output and "imagenet-a" not in output


def test_memory_requests_of_attribute_and_metric_jobs_scale_with_the_image_size(tmp_path):
    from robustxai.pipeline.resources import attribute_mem_mb, metric_mem_mb

    config = yaml.safe_load(SMOKE.read_text())
    config["dataset"]["image_size"] = 224
    path = tmp_path / "large.yaml"
    path.write_text(yaml.safe_dump(config))
    planned = snakemake(tmp_path, "-n", config=path).stdout
    requests = {}  # (rule, wildcards) -> mem_mb, from the plan's job blocks
    for block in re.split(r"\n(?=rule \w+:)", planned):
        wildcards = re.search(r"wildcards: (.*)", block)
        mem = re.search(r"resources: .*\bmem_mb=(\d+)", block)
        if block.startswith(("rule attribute:", "rule metrics:")) and wildcards and mem:
            requests[block.split(":")[0][5:], wildcards.group(1)] = int(mem.group(1))
    attribution = config["attribution"]
    gradient = attribute_mem_mb(224, attribution["images_per_batch"], attribution["images_per_shard"])
    assert gradient > 4000
    assert requests["attribute", "split=test, model=vgg-vanilla, method=gradient, shard=0"] == gradient
    assert requests["attribute", "split=test, model=vgg-vanilla, method=rise, shard=0"] == attribute_mem_mb(
        224, attribution["images_per_batch"], attribution["images_per_shard"], pass_kind="forward")
    scored = attribution["shards"] * attribution["images_per_shard"]
    # a metrics job asks for its largest metric's memory: rise's localisation metrics read maps only,
    # gradcam's pairs run the model (insertion: a gradient-sized pass at the most)
    assert requests["metrics", "model=vgg-vanilla, method=rise"] == metric_mem_mb(224, scored, None)
    assert requests["metrics", "model=vgg-vanilla, method=gradcam"] == metric_mem_mb(224, scored, "gradient")


def slurm_batching_arguments():
    """The ``--groups``/``--group-components`` arguments equivalent to profiles/slurm's batching."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    return ["--groups", *(f"{rule}={group}" for rule, group in profile["groups"].items()),
            "--group-components", *(f"{group}={size}" for group, size in profile["group-components"].items())]


@pytest.mark.parametrize("config_name", ["tests/configs/smoke.yaml", "configs/cifar10.yaml"])
def test_slurm_batches_never_wait_on_themselves(tmp_path, config_name):
    # the explainers' target maps and the maps of the explainers trained on them are both attribute
    # jobs; a batch holding both would wait on itself, which Snakemake refuses while building the DAG
    # (batches are filled in no fixed order, but the one-batch-for-all profile failed in every try)
    result = snakemake(tmp_path, "-n", *slurm_batching_arguments(), config=ROOT / config_name)
    batches = set(re.findall(r"Group job (\S+) \(jobs", result.stdout))
    assert "attribute-train-alignment_target" in batches and "attribute-test-gradient" in batches, batches


def test_cifar10_config_runs_data_preparation_on_a_stand_in_archive(tmp_path):
    make_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=40)
    config = yaml.safe_load((ROOT / "configs" / "cifar10.yaml").read_text())
    config["dataset"]["cifar10"].update(url=(tmp_path / "cifar-10-python.tar.gz").as_uri(), md5=None,
                                        sha256=file_digest(tmp_path / "cifar-10-python.tar.gz"), val_size=30)
    path = tmp_path / "cifar.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "prepare_dataset", config=path)
    data = tmp_path / "results" / "cifar10" / "data" / "cifar10"
    sizes = {split: len(load_split(data / f"{split}.h5")) for split in ("train", "val", "test", "ood_corruption")}
    assert sizes == {"train": 170, "val": 30, "test": 40, "ood_corruption": 40}
    # a box metric run on it anyway (by hand: the config check refuses it) scores NaN for every image
    from robustxai.attribution.shards import AttributionShard, write_shard
    from robustxai.pipeline.metrics import metric_job, table_metadata

    shard = tmp_path / "shard-0.h5"
    rng = np.random.default_rng(0)
    write_shard(AttributionShard(maps=rng.random((40, 32, 32), dtype=np.float32), index=np.arange(40),
                                 target=np.zeros(40), predicted=np.zeros(40), probs=np.full((40, 10), 0.1)), shard)
    table = metric_job("energy_in_box", {}, [str(shard)], str(data / "test.h5"), str(tmp_path / "energy.parquet"))
    assert len(table) == 40 and table["energy_in_box"].isna().all()
    assert table_metadata(tmp_path / "energy.parquet")["images_without_box"] == 40


def test_tinyimagenet_config_downloads_and_prepares_a_stand_in_zip(tmp_path):
    zip_path = tmp_path / "tiny-imagenet-200.zip"
    make_tinyimagenet_zip(zip_path, wnids=["n01443537", "n01629819", "n01641577"], per_class=6, val_per_class=2)
    config = yaml.safe_load((ROOT / "configs" / "tinyimagenet.yaml").read_text())
    config["dataset"]["tinyimagenet"].update(url=zip_path.as_uri(), md5=file_digest(zip_path, "md5"), val_size=3)
    config["alignment"]["shards"] = 1  # the stand-in's 15 training images fit in one shard
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "prepare_dataset", config=path)
    assert (tmp_path / "results" / "tinyimagenet" / "downloads" / "tinyimagenet" / "tiny-imagenet-200.zip").exists()
    data = tmp_path / "results" / "tinyimagenet" / "data" / "tinyimagenet"
    splits = {split: load_split(data / f"{split}.h5") for split in ("train", "val", "test", "ood_corruption")}
    assert {split: len(s) for split, s in splits.items()} == {"train": 15, "val": 3, "test": 6, "ood_corruption": 6}
    assert splits["test"].images.shape[1:] == (64, 64, 3) and (splits["test"].boxes[:, 2] > 0).all()
    planned = snakemake(tmp_path, "-n", config=path).stdout
    assert "alignment_target" in planned and "model=resnet18-explainer_robust" in planned


def test_imagenet_config_runs_data_preparation_on_a_stand_in_tree(tmp_path):
    images, boxes = tmp_path / "val", tmp_path / "val_boxes"
    boxes.mkdir()
    for k, wnid in enumerate(["n01440764", "n01443537", "n15075141"]):  # ImageNet classes 0, 1 and 999
        (images / wnid).mkdir(parents=True)
        for i in range(2):
            stem = f"ILSVRC2012_val_{k * 2 + i:08d}"
            Image.new("RGB", (300, 200), (40 * k, 90, 200)).save(images / wnid / f"{stem}.JPEG")
            write_voc(boxes / f"{stem}.xml", stem, 300, 200, [(wnid, (101, 51, 200, 150))])
    config = yaml.safe_load((ROOT / "configs" / "imagenet.yaml").read_text())
    config["dataset"]["image_size"] = 100
    del config["dataset"]["imagefolder"]["ood"]  # their folders are not there (tests/test_imagenet_ood.py)
    # num_classes stays 1000 and no class file is configured: wnid folders keep their ImageNet indices
    config["dataset"]["imagefolder"]["splits"] = {"test": {"images": str(images), "annotations": str(boxes)}}
    path = tmp_path / "imagenet.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "prepare_dataset", config=path)
    test = load_split(tmp_path / "results" / "imagenet" / "data" / "imagenet_val" / "test.h5")
    assert test.labels.tolist() == [0, 0, 1, 1, 999, 999]
    # 300x200 -> 150x100, centre crop x from 25: box (100, 50, 200, 150) -> (50, 25, 100, 75) -> (25, 25, 75, 75)
    assert test.boxes.tolist() == [[25, 25, 75, 75]] * 6
    # a class_names_file is an input of data preparation: editing it reruns it
    wnids = list(imagenet_wnids())
    (tmp_path / "classes.txt").write_text("\n".join(wnids) + "\n")
    config["dataset"]["imagefolder"]["class_names_file"] = "classes.txt"
    path.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "prepare_dataset", config=path)
    assert "Nothing to be done" in snakemake(tmp_path, "-n", "prepare_dataset", config=path).stdout
    (tmp_path / "classes.txt").write_text("\n".join([wnids[1], wnids[0], *wnids[2:]]) + "\n")
    planned = snakemake(tmp_path, "-n", "prepare_dataset", config=path).stdout
    assert "rule prepare_dataset" in planned and "Updated input files: classes.txt" in planned, planned


def test_gradcam_rise_and_gradient_on_a_trained_smoke_model_point_at_the_object(smoke_run):
    """Sanity of the attribution engine on a real trained model: Grad-CAM's, RISE's and the gradient's
    mass falls inside the ground-truth box far more than a random map's. Mass is the map minus its
    minimum (RISE maps are probabilities with a large constant offset; Grad-CAM's minimum is 0), and
    the positive part for the signed gradient."""
    import torch

    from robustxai.attribution import make_method
    from robustxai.models import load_checkpoint

    model, _ = load_checkpoint(smoke_run / "results" / "models" / "vgg-vanilla.pt")
    test = load_split(smoke_run / "results" / "data" / "builtin" / "test.h5")
    images, _ = test.tensors()
    images = images[:64]
    inside = torch.zeros(64, 32, 32, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(test.boxes[:64]):
        inside[i, y0:y1, x0:x1] = True
    with torch.no_grad():
        predicted = model(images).argmax(1)

    def share_in_box(name, mass, **settings):
        maps = make_method(name, **settings).explain(model, images, predicted).detach()
        weights = maps.clamp_min(0) if mass == "positive" else maps - maps.flatten(1).amin(1).view(-1, 1, 1)
        return ((weights * inside).sum((1, 2)) / weights.sum((1, 2)).clamp_min(1e-12)).mean().item()

    random_share = share_in_box("random", "above minimum")
    assert abs(random_share - inside.float().mean().item()) < 0.03  # a random map spreads evenly
    assert share_in_box("gradcam", "above minimum") > random_share + 0.1
    assert share_in_box("rise", "above minimum", masks=500, cells=4) > random_share + 0.05
    assert share_in_box("gradient", "positive") > random_share + 0.1


def kill_session(session):
    """SIGKILL every process of a session (Snakemake and the jobs it started)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session:
                    os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_a_job_killed_mid_shard_leaves_no_shard_and_a_rerun_gives_the_same_maps(smoke_run):
    from robustxai.attribution.shards import read_shard

    target = smoke_run / "results" / "attributions" / "builtin" / "test" / "vgg-vanilla" / "bsm" / "shard-0.h5"
    before = read_shard(target)
    log = smoke_run / "results" / "logs" / "attribute" / "test" / "vgg-vanilla" / "bsm" / "shard-0.log"
    log.unlink()  # the first run's log: wait for the rerun's own
    command = snakemake_command(smoke_run, "--cores", "1", "--forcerun", str(target.relative_to(smoke_run)))
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    # BSM's boundary search takes ~3 s of the job: kill once its progress bar has started
    while not (log.exists() and "BoundarySaliency" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "the job ended before it could be killed"
    kill_session(run.pid)
    run.wait()
    assert not target.exists()  # never a half-written shard under the final name
    snakemake(smoke_run, "--unlock")  # as after any crash of Snakemake itself
    result = snakemake(smoke_run, "--rerun-incomplete")
    assert "attribute" in result.stdout + result.stderr
    after = read_shard(target)
    assert np.array_equal(after.index, before.index) and np.array_equal(after.target, before.target)
    # the rerun may tune a different batch size, which only changes float rounding
    assert np.allclose(after.maps, before.maps, atol=1e-5)
    assert "Nothing to be done" in snakemake(smoke_run, "-n").stdout


def test_tuning_off_reruns_give_bit_identical_shards_and_metric_tables_under_load(smoke_run, tmp_path):
    """The smoke config sets ``tuning: off``: rerunning its jobs while two busy processes load the CPU
    gives the same bits (maps, predictions, metric values) as the first run, and both record the mode."""
    from robustxai.attribution.shards import read_shard
    from robustxai.integrity import read_table

    workdir = tmp_path / "rerun"
    shutil.copytree(smoke_run, workdir, ignore=shutil.ignore_patterns("logs", "benchmarks", "report.html"))
    attributions = Path("results/attributions/builtin/test/vgg-vanilla")
    shards = [attributions / method / "shard-0.h5" for method in ("gradcam", "rise", "smoothgrad_of_robust", "lime")]
    tables = [path.relative_to(workdir) for path in sorted((workdir / "results" / "metrics").rglob("*.parquet"))
              if "vgg-vanilla" in path.parts and path.stem in ("insertion", "deletion", "energy_in_box")]
    assert len(tables) >= 4
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        folders = sorted({table.parent for table in tables})  # a metrics job writes its (model, method) folder
        snakemake(workdir, "--force", *map(str, shards + folders))
    finally:
        for burner in burners:
            burner.kill()
    for path in shards:
        before, after = read_shard(smoke_run / path), read_shard(workdir / path)
        assert before.attrs["tuning"] == after.attrs["tuning"] == "off", path
        assert after.attrs["memory_layout"] == "contiguous", path
        assert np.array_equal(after.maps, before.maps) and np.array_equal(after.probs, before.probs), path
        assert (workdir / path).stat().st_mtime > (smoke_run / path).stat().st_mtime  # it did run again
    for path in tables:
        before, after = read_table(smoke_run / path), read_table(workdir / path)
        pd.testing.assert_frame_equal(after, before, check_exact=True, obj=str(path))


def assert_same_results(ours, reference):
    """Every shard, table, checkpoint, split, evaluation and CSV under ``reference`` has its twin under
    ``ours``, numbers within 1e-5 (a rerun may tune another batch size, which only changes rounding) but
    for wall times."""
    import json

    import torch

    from robustxai.attribution.shards import read_shard
    from robustxai.integrity import read_table
    from robustxai.models.checkpoint import load_payload

    def arrays_match(a, b):
        numeric = np.issubdtype(a.dtype, np.number)
        return np.allclose(a, b, atol=1e-5) if numeric else np.array_equal(a, b)

    def frames_match(a, b, name):  # wall times (a history's "seconds") differ from run to run
        a, b = (frame.drop(columns=[c for c in frame.columns if "seconds" in c]) for frame in (a, b))
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-5, obj=str(name))

    for path in sorted(reference.rglob("*")):
        twin = ours / path.relative_to(reference)
        if path.suffix == ".h5" and "data" in path.relative_to(reference).parts:
            a, b = load_split(twin), load_split(path)
            assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels), path
            assert all(np.array_equal(a.extras[k], b.extras[k]) for k in a.extras), path
        elif path.suffix == ".h5":
            a, b = read_shard(twin), read_shard(path)
            assert np.array_equal(a.index, b.index) and np.array_equal(a.target, b.target), path
            assert np.allclose(a.maps, b.maps, atol=1e-5) and np.allclose(a.probs, b.probs, atol=1e-5), path
        elif path.suffix == ".parquet":
            frames_match(read_table(twin), read_table(path), path)
        elif path.suffix == ".pt":
            a, b = load_payload(twin)["state_dict"], load_payload(path)["state_dict"]
            assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), path
        elif path.suffix == ".npz":
            with np.load(twin) as a, np.load(path) as b:
                assert a.files == b.files and all(arrays_match(a[k], b[k]) for k in a.files), path
        elif path.suffix == ".csv" or path.parent.name == "evaluation":
            read = pd.read_csv if path.suffix == ".csv" else lambda p: pd.DataFrame([json.loads(p.read_text())])
            frames_match(read(twin), read(path), path)


def test_verify_names_the_damaged_files_and_a_forced_rerun_regenerates_them(smoke_run, tmp_path, monkeypatch,
                                                                             capsys):
    from robustxai.cli import main

    workdir = tmp_path / "run"
    shutil.copytree(smoke_run, workdir, symlinks=True)  # keeps modification times: nothing to rerun
    monkeypatch.chdir(workdir)
    # a cheap checkpoint (AdvProp's: only its evaluation and the study's tables read it), a shard and a table
    damaged = ["results/attributions/builtin/test/vgg-pgd_l2/random/shard-0.h5",
               "results/metrics/builtin/vgg-vanilla/random/road.parquet", "results/models/vgg-advprop.pt"]
    for path in map(Path, damaged):
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])

    def verify(*args):
        with pytest.raises(SystemExit) as exit:
            main(["verify", "results", *args])
        return exit.value.code, capsys.readouterr().out

    code, out = verify()
    assert code == 1 and " 3 corrupt, 0 leftover temporary, 0 written before checksums" in out
    assert sorted(line.split(" ")[1] for line in out.splitlines() if line.startswith("corrupt: ")) == sorted(damaged)
    code, out = verify("--fix")
    assert not any(Path(path).exists() for path in damaged)
    command = out.splitlines()[-1].split(": ", 1)[1].split()
    rerun = [str(Path(path).parent) if path.endswith(".parquet") else path for path in damaged]  # a table's job folder
    assert command[:2] == ["snakemake", "--forcerun"] and sorted(command[2:]) == sorted(rerun)
    snakemake(workdir, *command[1:])
    assert verify()[0] == 0 and "Nothing to be done" in snakemake(workdir, "-n").stdout
    assert_same_results(workdir / "results", smoke_run / "results")
