"""ROAR: exact removal, the blur control, the mask-only leakage control, the table, and config resolution."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from robustxai.config import (ConfigError, attribution_jobs, load_config, resolve_attribution, resolve_roar,
                              roar_anchor_models, roar_recipe)
from robustxai.pipeline.roar import share_anchors
from robustxai.metrics.ranking import RankingPolicy
from robustxai.roar.convergence import CONVERGED_GAIN, converged, late_train_gain, retraining_converged
from robustxai.roar.leakage import chance_level, leak_established, leakage_verdict, mask_inputs, wilson_interval
from robustxai.roar.removal import blur_maps, channel_mean, object_maps, object_share_removed, remove_top
from robustxai.roar.table import leakage_table, roar_table
from robustxai.training.algorithms import VanillaTraining
from robustxai.training.loop import TrainingSettings, train
from robustxai.models.wrapper import build_classifier
from workflow_runs import SMOKE


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.37, 0.8, 1.0])
def test_removal_replaces_exactly_round_p_pixels_and_leaves_the_rest_bit_identical(fraction):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 10, 12, generator=generator)
    maps = torch.randn(4, 10, 12, generator=generator)
    fill = channel_mean(images)
    modified, removed = remove_top(images, maps, fraction, fill)
    count = int(round(fraction * 120))
    per_pixel = removed.all(1)
    assert torch.equal(removed.any(1), per_pixel)  # whole pixels
    assert per_pixel.flatten(1).sum(1).tolist() == [count] * 4
    assert torch.equal(modified[~removed], images[~removed])  # bit-identical elsewhere
    assert torch.equal(modified.permute(0, 2, 3, 1)[per_pixel], fill.expand(4 * count, 3))
    # the removed pixels are the top of the map
    for i in range(4):
        if 0 < count < 120:
            assert maps[i][per_pixel[i]].min() >= maps[i][~per_pixel[i]].max()


def test_element_removal_takes_elements_and_the_fill_is_the_train_mean():
    images = torch.zeros(2, 3, 4, 4)
    images[:, 1] = 1.0
    assert channel_mean(images).tolist() == [0.0, 1.0, 0.0]
    maps = torch.arange(16.0).view(1, 4, 4).expand(2, 4, 4)
    _, removed = remove_top(images, maps, 0.25, torch.full((3,), 0.5), RankingPolicy(ranking="element"))
    assert removed.flatten(1).sum(1).tolist() == [12, 12]  # round(0.25 x 48) elements
    assert removed[:, :, 3, :].all()  # the 4 largest-magnitude pixels, all channels


def test_blur_control_keeps_mass_and_smooths():
    maps = torch.zeros(1, 9, 9)
    maps[0, 4, 4] = 1.0
    blurred = blur_maps(maps, 1.0)
    assert blurred.shape == maps.shape and abs(blurred.sum().item() - 1.0) < 1e-5
    assert blurred[0, 4, 4] < 0.2 and blurred[0, 4, 5] > 0.05 and blurred[0, 4, 4] == blurred.max()


def test_wilson_interval_and_chance():
    low, high = wilson_interval(50, 100)
    assert abs(low - 0.4038) < 1e-3 and abs(high - 0.5962) < 1e-3
    assert chance_level(torch.tensor([0, 1, 1, 2])) == 0.5


def _mask_classifier_accuracy(removed_train, labels_train, removed_test, labels_test):
    model = build_classifier("cifar_vgg_tiny", 2, [0.5] * 3, [0.5] * 3)
    settings = TrainingSettings(epochs=3, batch_size=32, lr=0.05, translate=0, warmup_epochs=0.5, seed=0)
    torch.manual_seed(0)
    result = train(model, VanillaTraining(), settings, mask_inputs(removed_train), labels_train,
                   mask_inputs(removed_test), labels_test, device=torch.device("cpu"))
    with torch.no_grad():
        predictions = result.model(mask_inputs(removed_test)).argmax(1)
    return leakage_verdict(predictions, labels_test)


def test_a_leak_is_established_early_only_at_the_bonferroni_corrected_bound():
    # 512 test images, chance 0.1, margin 0.05: 0.19 clears the 95 % bound checked once, not when checked after
    # each of 24 epochs (z 2.86); 0.2 clears both; the default study's gradient control at 0.1 reached 0.236 by epoch 3
    assert leak_established(0.19, 512, 0.1, 0.05, looks=1) and not leak_established(0.19, 512, 0.1, 0.05, looks=24)
    assert leak_established(0.20, 512, 0.1, 0.05, looks=24) and not leak_established(0.18, 512, 0.1, 0.05, looks=1)
    labels = torch.arange(512) % 10
    for correct in (90, 100, 110):  # looks=1 is the final verdict's own rule
        predictions = torch.where(torch.arange(512) < correct, labels, (labels + 1) % 10)
        verdict = leakage_verdict(predictions, labels, 0.05)
        assert verdict["leaked"] == leak_established(correct / 512, 512, verdict["chance"], 0.05, looks=1)


def test_a_mask_only_classifier_detects_a_constructed_leak_and_not_random_masks():
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (480,), generator=generator)
    # leak: class 0 maps peak in the left half, class 1 in the right half
    maps = torch.rand(480, 16, 16, generator=generator)
    maps[labels == 0, :, :8] += 1.0
    maps[labels == 1, :, 8:] += 1.0
    images = torch.rand(480, 3, 16, 16, generator=generator)
    _, removed = remove_top(images, maps, 0.3, torch.zeros(3))
    leak = _mask_classifier_accuracy(removed[:400], labels[:400], removed[400:], labels[400:])
    assert leak["leaked"] and leak["accuracy"] > 0.9
    _, random_removed = remove_top(images, torch.rand(480, 16, 16, generator=generator), 0.3, torch.zeros(3))
    control = _mask_classifier_accuracy(random_removed[:400], labels[:400], random_removed[400:], labels[400:])
    assert not control["leaked"] and control["accuracy"] < 0.7


def _history(*train_accuracies):
    return [{"epoch": epoch + 1, "train_accuracy": value} for epoch, value in enumerate(train_accuracies)]


#: a retraining that had stopped learning (last quarter: 0.94 -> 0.95) and one still learning (0.40 -> 0.56)
FLAT, RISING = _history(0.1, 0.5, 0.8, 0.9, 0.93, 0.94, 0.95, 0.95), _history(0.1, 0.1, 0.12, 0.2, 0.3, 0.4, 0.45, 0.56)


def _cell(model, method, fraction, repeat, accuracy, attribution_method=None, history=FLAT):
    return {"model": model, "method": method, "attribution_method": attribution_method, "fraction": fraction,
            "repeat": repeat, "accuracy": accuracy, "test_images": 200, "history": history}


def test_late_train_gain_reads_the_last_quarter_of_the_epochs():
    assert late_train_gain(FLAT) == pytest.approx(0.95 - 0.94) and converged(FLAT)
    assert late_train_gain(RISING) == pytest.approx(0.56 - 0.4) and not converged(RISING)
    # 12 epochs: the last 3 (ceil of a quarter) are compared with the 9th; the default study's gradient cell at
    # 0.05, 12 epochs (did not converge) and 24 (did)
    twelve = _history(0.095, 0.106, 0.093, 0.118, 0.161, 0.236, 0.301, 0.38, 0.445, 0.509, 0.542, 0.561)
    assert late_train_gain(twelve) == pytest.approx(0.561 - 0.445) and not converged(twelve)
    twenty_four = _history(0.095, 0.101, 0.098, 0.145, 0.214, 0.295, 0.401, 0.515, 0.6, 0.694, 0.765, 0.802, 0.841,
                           0.86, 0.88, 0.898, 0.913, 0.927, 0.935, 0.941, 0.948, 0.951, 0.955, 0.956)
    assert late_train_gain(twenty_four) == pytest.approx(0.956 - 0.927) and converged(twenty_four)
    # one seed of the default study's smoothgrad cell at 0.1 never left the plateau: a small late gain, but no slower
    # than its average, so still learning (test accuracy 0.105 where the other seeds reached 0.69-0.72)
    crawling = _history(0.099, 0.109, 0.099, 0.104, 0.11, 0.116, 0.125, 0.13, 0.13, 0.135, 0.129, 0.141, 0.132, 0.14,
                        0.139, 0.144, 0.154, 0.162, 0.166, 0.172, 0.176, 0.189, 0.189, 0.194)
    assert late_train_gain(crawling) == pytest.approx(0.194 - 0.162) and late_train_gain(crawling) < CONVERGED_GAIN
    assert not converged(crawling)
    # a classifier of random masks memorising them: below the noise level, converged
    assert converged(_history(*np.linspace(0.10, 0.149, 24)))
    assert late_train_gain(_history(0.7)) == pytest.approx(0.7) and not converged(_history(0.7))  # one epoch: unknown
    # the plateau schedule's own rule: the default study's random cell at 0.1 (repeat 0) levelled off after
    # epoch 16 (0.938 -> 0.939); its 3-epoch decay then added the annealing jump, +0.053 over the last quarter
    random_cell = _history(0.095, 0.106, 0.172, 0.346, 0.586, 0.728, 0.805, 0.853, 0.873, 0.892, 0.911, 0.917, 0.933,
                           0.926, 0.949, 0.938, 0.939, 0.965, 0.979)
    assert late_train_gain(random_cell) == pytest.approx(0.053)
    assert not converged(random_cell) and retraining_converged(random_cell, plateau_epoch=16)
    assert not retraining_converged(random_cell, None) and not retraining_converged(random_cell, float("nan"))
    assert retraining_converged(FLAT, None)
    assert np.isnan(late_train_gain([])) and not converged([])


def test_roar_table_means_repeats_and_puts_the_anchor_and_control_beside_them():
    cells = [_cell("m", "unmodified", 0.0, 0, 0.9), _cell("m", "unmodified", 0.0, 1, 0.92),
             _cell("m", "gradient", 0.5, 0, 0.6, "gradient"), _cell("m", "gradient", 0.5, 1, 0.7, "gradient"),
             _cell("m", "random", 0.5, 0, 0.85, "random"), _cell("m", "random", 0.5, 1, 0.86, "random")]
    leakage = [{"model": "m", "method": "gradient", "fraction": 0.5, "accuracy": 0.8, "accuracy_low": 0.74,
                "chance": 0.5, "leaked": True},
               {"model": "m", "method": "random", "fraction": 0.5, "accuracy": 0.5, "accuracy_low": 0.43,
                "chance": 0.5, "leaked": False}]
    table = roar_table(cells, leakage, model_accuracy={"m": 0.95}).set_index(["method", "fraction"])
    assert len(table) == 4
    gradient = table.loc[("gradient", 0.5)]
    assert gradient["accuracy"] == pytest.approx(0.65) and gradient["repeats"] == 2 and gradient["confounded"]
    half = 12.706 * np.std([0.6, 0.7], ddof=1) / np.sqrt(2)
    assert gradient["ci_low"] == pytest.approx(0.65 - half, abs=1e-3) and gradient["ci_kind"] == "t over repeats"
    assert not table.loc[("random", 0.5)]["confounded"]
    anchor = table.loc[("gradient", 0.0)]
    assert anchor["accuracy"] == pytest.approx(0.91) and anchor["model_test_accuracy"] == 0.95
    assert anchor["anchor_gap"] == pytest.approx(0.04) and anchor["accuracy_sd"] == pytest.approx(np.std([0.9, 0.92], ddof=1))
    assert np.isnan(gradient["model_test_accuracy"]) and np.isnan(gradient["anchor_gap"])
    assert gradient["accuracy_sd"] == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert gradient["converged"] and gradient["late_train_gain"] == pytest.approx(0.01)
    assert np.isnan(gradient["leakage_converged"])  # the controls above carry no history


def test_a_cell_not_retrained_because_its_control_leaks_has_no_accuracy_and_is_not_marked_unconverged(tmp_path):
    from robustxai.roar.table import plot_roar

    skipped = [{**_cell("m", "gradient", 0.5, k, float("nan"), "gradient"), "history": [], "skipped": "leaks"}
               for k in (0, 1)]
    cells = [_cell("m", "unmodified", 0.0, 0, 0.9), *skipped, _cell("m", "random", 0.5, 0, 0.85, "random")]
    leakage = [{"model": "m", "method": "gradient", "fraction": 0.5, "accuracy": 0.8, "accuracy_low": 0.74,
                "chance": 0.5, "leaked": True}]
    table = roar_table(cells, leakage).set_index(["method", "fraction"])
    gradient, random = table.loc[("gradient", 0.5)], table.loc[("random", 0.5)]
    assert gradient["confounded"] and not gradient["retrained"] and gradient["repeats"] == 2
    assert np.isnan(gradient["accuracy"]) and np.isnan(gradient["ci_low"]) and pd.isna(gradient["converged"])
    assert gradient["leakage_accuracy"] == 0.8 and random["retrained"] and random["converged"]
    plot_roar(table.reset_index(), str(tmp_path / "roar.png"))
    assert (tmp_path / "roar.png").stat().st_size > 10_000


def test_one_repeat_still_learning_marks_its_cell_and_its_control_unconverged():
    cells = [_cell("m", "unmodified", 0.0, 0, 0.9), _cell("m", "gradient", 0.5, 0, 0.6, "gradient"),
             _cell("m", "gradient", 0.5, 1, 0.5, "gradient", history=RISING)]
    leakage = [{"model": "m", "method": "gradient", "fraction": 0.5, "accuracy": 0.1, "accuracy_low": 0.05,
                "chance": 0.12, "leaked": False, "history": RISING}]
    table = roar_table(cells, leakage).set_index(["method", "fraction"])
    gradient = table.loc[("gradient", 0.5)]
    assert not gradient["converged"] and gradient["late_train_gain"] == pytest.approx(0.16)
    assert not gradient["leakage_converged"] and not gradient["confounded"]
    assert table.loc[("gradient", 0.0)]["converged"]
    controls = leakage_table(leakage)
    assert not controls["converged"].iloc[0] and controls["late_train_gain"].iloc[0] == pytest.approx(0.16)


def test_leakage_table_puts_the_controls_first_and_says_whether_each_answered_as_it_must():
    payload = lambda method, control, leaked: {"model": "m", "method": method, "control": control,  # noqa: E731
                                               "fraction": 0.2, "accuracy": 0.5, "accuracy_low": 0.4, "chance": 0.1,
                                               "leaked": leaked}
    table = leakage_table([payload("gradient", "cell", True), payload("random", "negative", True),
                           payload("true_objects", "positive", True)])
    assert list(table["method"]) == ["true_objects", "random", "gradient"]
    assert list(table["expected"]) == [True, False, None] and list(table["as_expected"]) == [True, False, None]
    # the positive control is not a ROAR row: it never marks a cell confounded
    cells = [_cell("m", "unmodified", 0.0, 0, 0.9), _cell("m", "gradient", 0.2, 0, 0.6, "gradient")]
    objects = {**payload("gradient", "positive", True), "method": "gradient"}
    assert not roar_table(cells, [objects]).set_index("fraction").loc[0.2, "confounded"]


def test_object_maps_and_the_share_of_the_objects_removed():
    boxes = torch.tensor([[1, 0, 3, 2], [-1, -1, -1, -1]])
    maps = object_maps(boxes, None, 4, 4)
    assert maps[0].tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]] and maps[1].sum() == 0
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, 0, 0] = True
    assert object_maps(boxes, masks, 4, 4)[0].sum() == 1  # masks win over boxes
    removed = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    removed[0, 0, 0, 1] = True  # one channel of one of the 4 object pixels
    assert object_share_removed(removed, maps) == 0.25
    assert np.isnan(object_share_removed(removed, torch.zeros(2, 4, 4)))


def test_models_trained_alike_share_their_anchors_and_positive_controls_in_the_table():
    config = load_config("config.yaml")
    roar = resolve_roar(config, resolve_attribution(config))
    robust, standard = "resnet_tiny-explainer_robust", "resnet_tiny-explainer_standard"
    assert roar_anchor_models(config, roar) == {robust: robust, standard: robust}  # both explainers: one recipe
    config["models"][standard]["training"] = {"weight_decay": 0.001}  # a key roar.training leaves to the model
    assert roar_anchor_models(config, roar) == {robust: robust, standard: standard}
    cells = [_cell("a", "unmodified", 0.0, 0, 0.9), _cell("a", "gradient", 0.2, 0, 0.6, "gradient"),
             _cell("b", "explainer", 0.2, 0, 0.7, "explainer")]
    controls = [{"model": "a", "method": "true_objects", "control": "positive", "fraction": 0.2, "accuracy": 0.9,
                 "accuracy_low": 0.85, "chance": 0.1, "leaked": True},
                {"model": "a", "method": "gradient", "control": None, "fraction": 0.2, "accuracy": 0.5,
                 "accuracy_low": 0.4, "chance": 0.1, "leaked": True}]
    shared = {"a": "a", "b": "a"}
    table = roar_table(share_anchors(cells, shared), share_anchors(controls, shared), model_accuracy={"a": 0.9, "b": 0.95})
    assert table.set_index(["model", "method", "fraction"]).loc[("b", "explainer", 0.0), "anchor_gap"] == \
        pytest.approx(0.05)  # b's anchor row: a's retraining beside b's own accuracy
    copied = [c for c in share_anchors(controls, shared) if c["model"] == "b"]
    assert [(c["method"], c["shared_from"]) for c in copied] == [("true_objects", "a")]  # a's own cells stay a's


def smoke_config():
    return yaml.safe_load(SMOKE.read_text())


def test_roar_config_resolves_rows_splits_and_map_jobs():
    config = smoke_config()
    attribution = resolve_attribution(config)
    roar = resolve_roar(config, attribution)
    assert set(roar["entries"]) == {"gradcam", "random", "gradcam_blurred"}
    assert roar["entries"]["gradcam_blurred"] == {"method": "gradcam", "blur_sigma": 1.0, "models": ["vgg-vanilla"],
                                                  "control": None}
    assert roar["entries"]["random"]["control"] == "negative"  # the random baseline: the negative leakage control
    assert roar["fractions"] == [0.5] and roar["models"] == ["vgg-vanilla"]
    # one ranking rule for every method: by magnitude
    assert roar["ranking"] == {"ranking": "pixel", "reduction": "abs_sum", "tie_break_seed": 0}
    assert roar["leakage"] == {"training": {"epochs": 2}, "margin": 0.05, "positive_control": True}
    # the test split follows the attribution section's shards (20 images each), the train split ROAR's
    assert roar["splits"] == {"train": {"images": 600, "images_per_shard": 600, "shards": 1},
                              "test": {"images": 40, "images_per_shard": 20, "shards": 2}}
    jobs = attribution_jobs(attribution, None, roar)
    assert jobs["train/gradcam"]["models"] == ["vgg-vanilla"] and jobs["train/gradcam"]["images_per_shard"] == 600
    assert jobs["train/gradcam"]["settings"] == jobs["test/gradcam"]["settings"]
    assert jobs["test/gradcam"] == attribution_jobs(attribution, None)["test/gradcam"]  # unchanged
    recipe = roar_recipe(config, roar, "vgg-vanilla", repeat=2)
    assert recipe["training"]["epochs"] == 3 and recipe["training"]["seed"] == 2 and recipe["arch"] == "cifar_vgg_tiny"
    assert "clean_epochs" not in recipe["training"]
    assert roar_recipe(config, roar, "vgg-vanilla", leakage=True)["training"]["epochs"] == 2


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(methods=["gradcam"]), "random baseline"),
    (lambda r: r.update(methods=["gradcam", "random", "saliency"]), "'saliency' is not an attribution method"),
    (lambda r: r.update(methods={"random": {}, "gradcam": {"models": ["vgg-explainer"]}}), "not explained by 'gradcam'"),
    (lambda r: r.update(blur={"sigma": 1.0, "methods": ["lime"]}), "not ROAR methods"),
    (lambda r: r.pop("train_images"), None),
])
def test_roar_config_errors_name_the_key(change, message):
    config = smoke_config()
    change(config["roar"])
    attribution = resolve_attribution(config)
    if message is None:  # the builtin kind knows its split sizes
        assert resolve_roar(config, attribution)["splits"]["train"]["images"] == 2000
        return
    with pytest.raises(ConfigError, match=message):
        resolve_roar(config, attribution)


def test_roar_needs_split_sizes_it_cannot_know():
    config = copy.deepcopy(smoke_config())
    config["dataset"] = {"name": "folders", "kind": "imagefolder", "image_size": 32,
                         "imagefolder": {"num_classes": 10, "splits": {"train": {"images": "a"}, "val": {"images": "b"},
                                                       "test": {"images": "c"}}}}
    for model in config["models"].values():
        model.pop("explainer", None)
    with pytest.raises(ConfigError, match="roar.train_images|roar.test_images"):
        config["roar"].pop("train_images")
        resolve_roar(config, {"methods": {"gradcam": {"models": ["vgg-vanilla"]}, "random": {"models": ["vgg-vanilla"]}},
                              "models": ["vgg-vanilla"], "split": "test", "images_per_shard": 20})


def _write_split_and_maps(tmp_path, name, count, generator):
    from robustxai.attribution.shards import AttributionShard, write_shard
    from robustxai.data.splits import ImageSplit, save_split

    labels = np.arange(count) % 2
    images = generator.integers(0, 60, size=(count, 16, 16, 3), dtype=np.uint8)
    images[labels == 1, :, :8] += 150  # class 1: a bright left half
    save_split(ImageSplit(images, labels, np.zeros((count, 4), np.int32), ["dark", "left"]), tmp_path / f"{name}.h5")
    maps = generator.random((count, 16, 16)).astype(np.float32)
    paths = []
    for k, start in enumerate(range(0, count, 64)):
        index = np.arange(start, min(start + 64, count))
        path = tmp_path / name / f"shard-{k}.h5"
        write_shard(AttributionShard(maps[index], index, labels[index], labels[index],
                                     np.full((len(index), 2), 0.5, np.float32)), path)
        paths.append(str(path))
    return str(tmp_path / f"{name}.h5"), paths


def test_roar_job_writes_its_cell_and_a_killed_retraining_resumes_to_the_same_result(tmp_path, monkeypatch):
    import json

    from robustxai.pipeline.roar import roar_job

    torch.set_num_threads(1)
    generator = np.random.default_rng(0)
    train_path, train_maps = _write_split_and_maps(tmp_path, "train", 192, generator)
    test_path, test_maps = _write_split_and_maps(tmp_path, "test", 64, generator)
    recipe = {"arch": "cifar_vgg_tiny", "arch_args": {}, "num_classes": 2, "mean": [0.5] * 3, "std": [0.25] * 3,
              "training": {"epochs": 3, "batch_size": 32, "lr": 0.05, "warmup_epochs": 0.5, "translate": 0, "seed": 0}}
    splits = {"train": {"images": 160}, "test": {"images": 64}}
    arguments = ("m", "random", {"method": "random", "blur_sigma": None}, 0.25, 0, recipe,
                 {"ranking": "pixel", "reduction": "sum", "tie_break_seed": 0}, splits, train_path, test_path,
                 train_maps, test_maps)
    whole = roar_job(*arguments, str(tmp_path / "whole.json"), torch.device("cpu"))
    assert whole["train_images"] == 160 and whole["removed_share"] == 0.25 and len(whole["history"]) == 3
    assert json.loads((tmp_path / "whole.json").read_text())["accuracy"] == whole["accuracy"]
    assert whole["accuracy"] > 0.9  # random removal of a quarter keeps the bright half visible

    steps = {"count": 0}
    original_step = torch.optim.SGD.step

    def crash_in_epoch_two(self, *args, **kwargs):
        steps["count"] += 1
        if steps["count"] == 7:  # 5 steps per epoch: killed during the second epoch
            raise KeyboardInterrupt("killed")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        roar_job(*arguments, str(tmp_path / "cell.json"), torch.device("cpu"))
    assert (tmp_path / "cell.resume").exists() and not (tmp_path / "cell.json").exists()
    monkeypatch.setattr(torch.optim.SGD, "step", original_step)
    resumed = roar_job(*arguments, str(tmp_path / "cell.json"), torch.device("cpu"))
    assert resumed["accuracy"] == whole["accuracy"]  # epoch 1 kept, epoch 2 rerun from its start
    assert [row["loss"] for row in resumed["history"]] == [row["loss"] for row in whole["history"]]
    assert not (tmp_path / "cell.resume").exists()


def _write_bar_split(tmp_path, name, count, generator):
    """Class 0: a horizontal bar, class 1: a vertical bar, at random places (masks and boxes stored);
    random maps in shards beside it."""
    from robustxai.attribution.shards import AttributionShard, write_shard
    from robustxai.data.splits import ImageSplit, boxes_from_masks, save_split

    labels = np.arange(count) % 2
    masks = np.zeros((count, 16, 16), bool)
    for i, label in enumerate(labels):
        row, col = generator.integers(0, 10, size=2)
        if label == 0:
            masks[i, row + 2:row + 5, 1:15] = True
        else:
            masks[i, 1:15, col + 2:col + 5] = True
    images = generator.integers(0, 60, size=(count, 16, 16, 3), dtype=np.uint8)
    images[masks] = 220
    save_split(ImageSplit(images, labels, boxes_from_masks(masks), ["across", "down"], masks=masks),
               tmp_path / f"{name}.h5")
    maps = generator.random((count, 16, 16)).astype(np.float32)
    path = tmp_path / name / "shard-0.h5"
    write_shard(AttributionShard(maps, np.arange(count), labels, labels, np.full((count, 2), 0.5, np.float32)), path)
    return str(tmp_path / f"{name}.h5"), [str(path)]


def test_the_leakage_job_flags_its_positive_control_and_not_random_masks(tmp_path):
    from robustxai.pipeline.roar import leakage_job

    torch.set_num_threads(1)
    generator = np.random.default_rng(0)
    train_path, train_maps = _write_bar_split(tmp_path, "train", 400, generator)
    test_path, test_maps = _write_bar_split(tmp_path, "test", 160, generator)
    recipe = {"arch": "cifar_vgg_tiny", "arch_args": {}, "num_classes": 2, "mean": [0.5] * 3, "std": [0.25] * 3,
              "training": {"epochs": 3, "batch_size": 32, "lr": 0.05, "warmup_epochs": 0.5, "translate": 0, "seed": 0}}
    common = dict(fraction=0.1, recipe=recipe, ranking={"ranking": "pixel", "reduction": "abs_sum", "tie_break_seed": 0},
                  splits={"train": {"images": 400}, "test": {"images": 160}}, margin=0.05, train_path=train_path,
                  test_path=test_path, train_maps=train_maps, test_maps=test_maps, device=torch.device("cpu"))
    positive = leakage_job("m", "true_objects", {"method": None, "blur_sigma": None, "maps": "objects",
                                                 "control": "positive"}, output_path=str(tmp_path / "p.json"), **common)
    negative = leakage_job("m", "random", {"method": "random", "blur_sigma": None, "control": "negative"},
                           output_path=str(tmp_path / "n.json"), **common)
    assert positive["control"] == "positive" and positive["leaked"] and positive["accuracy"] > 0.9
    # the positive control stops once its leak is established (first check, after epoch 1); random masks train on
    assert positive["stopped_at_leak"] == 1 and len(positive["history"]) == 1
    assert negative["stopped_at_leak"] is None and len(negative["history"]) == 3
    # 0.1 of 256 pixels = 26 of each bar's 42: the removal stays inside the object
    assert positive["object_removed_share"] == pytest.approx(26 / 42)
    assert negative["control"] == "negative" and not negative["leaked"] and negative["accuracy"] < 0.7
    # a ROAR cell waits for its control: not retrained where the control leaks, retrained where it does not
    from robustxai.pipeline.roar import roar_job

    cell = ("m", "random", {"method": "random", "blur_sigma": None}, 0.1, 0, recipe, common["ranking"],
            common["splits"], train_path, test_path, train_maps, test_maps)
    skipped = roar_job(*cell, str(tmp_path / "skipped.json"), torch.device("cpu"), leakage_path=str(tmp_path / "p.json"))
    assert np.isnan(skipped["accuracy"]) and skipped["history"] == [] and "mask-only control leaks" in skipped["skipped"]
    assert f"accuracy {positive['accuracy']:.3f}" in skipped["skipped"] and skipped["test_images"] == 160
    retrained = roar_job(*cell, str(tmp_path / "cell.json"), torch.device("cpu"), leakage_path=str(tmp_path / "n.json"))
    assert len(retrained["history"]) == 3 and retrained["accuracy"] > 0.9 and "skipped" not in retrained
