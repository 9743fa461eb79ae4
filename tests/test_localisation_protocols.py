"""Map protocols of energy in box and box IoU (issue 22): what each ``rescale`` scores on constructed
maps, ``auto`` resolved from the methods' sign declarations, the declarations checked against real
maps, and the protocol recorded in the metric tables and the explainability table."""
import numpy as np
import pandas as pd
import pytest
import torch

from robustxai.attribution import METHODS, make_method, method_class
from robustxai.metrics import MetricBatch, make_metric, settings_for_method
from robustxai.metrics.localisation import RESCALES
from robustxai.models import build_classifier
from robustxai.models.explainer import branch_settings, build_branch

BOX = [4, 4, 12, 12]  # 8 x 8 of a 16 x 16 image: a quarter of it
BOX_METRICS = ("energy_in_box", "box_iou")


def signed_map():
    """A 16 x 16 signed map whose magnitude lies in ``BOX``: +1 on the box's left half (columns 4-7),
    -1 on its right half (columns 8-11); outside, a checkerboard of +0.01 and -0.03 (96 pixels each)."""
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    outside = torch.where((rows + cols) % 2 == 0, 0.01, -0.03)
    inside = torch.where(cols < 8, 1.0, -1.0)
    in_box = (rows >= 4) & (rows < 12) & (cols >= 4) & (cols < 12)
    return torch.where(in_box, inside, outside)


def batch_of(maps):
    n = len(maps)
    return MetricBatch(torch.zeros(n, 3, 16, 16), maps, torch.zeros(n, dtype=torch.long), torch.tensor([BOX] * n))


def scores(maps, **settings):
    """(energy in box, box IoU) per map, (N,) each."""
    batch = batch_of(maps)
    return tuple(make_metric(name, **settings)(None, batch)[name] for name in BOX_METRICS)


def random_maps(n=64):
    """The random baseline's maps: uniform [0, 1)."""
    return torch.rand(n, 16, 16, generator=torch.Generator().manual_seed(0))


# energy: the mass in the box over all the mass; box IoU: the largest component of pixels >= 0.2 x the largest mass
EXPECTED = {
    # |map|: 64 in the box, 96 x 0.01 + 96 x 0.03 outside; the box is exactly the pixels kept
    "abs": (64 / (64 + 3.84), 1.0),
    # max(map, 0): 32 in the box (its left half, all that is kept), 96 x 0.01 outside
    "positive": (32 / (32 + 0.96), 32 / 64),
    "none": (32 / (32 + 0.96), 32 / 64),
    # map + 1: 32 x 2 in the box, 96 x 1.01 + 96 x 0.97 outside; the outside (all >= 0.2 x 2) joins the
    # left half in one component spanning the image
    "minmax": (64 / (64 + 190.08), 64 / 256),
    # the map has negative values: scored by abs
    "auto": (64 / (64 + 3.84), 1.0),
}


@pytest.mark.parametrize("rescale", RESCALES)
def test_each_protocol_on_a_hand_computed_signed_map(rescale):
    energy, iou = scores(signed_map()[None], rescale=rescale)
    assert (energy.item(), iou.item()) == pytest.approx(EXPECTED[rescale], abs=1e-6)


def test_abs_scores_the_magnitude_and_positive_the_positive_part():
    maps = torch.stack([signed_map(), -signed_map(), random_maps(1)[0] - 0.5])
    for name in BOX_METRICS:
        metric = make_metric(name, rescale="abs")
        assert torch.equal(metric(None, batch_of(maps))[name], metric(None, batch_of(maps.abs()))[name])
        assert torch.equal(metric(None, batch_of(maps))[name],
                           make_metric(name, rescale="positive")(None, batch_of(maps.abs()))[name])
        positive = make_metric(name, rescale="positive")
        assert torch.equal(positive(None, batch_of(maps))[name], positive(None, batch_of(maps.clamp_min(0)))[name])
    # the flipped map's positive part: the box's right half (32), 96 x 0.03 outside
    assert scores(-signed_map()[None], rescale="positive") == pytest.approx((32 / (32 + 2.88), 32 / 64))


@pytest.mark.parametrize("method,settings", [("gradient", {}), ("smoothgrad", {}), ("occlusion", {}),
                                             ("robust_counterpart", {"counterpart": "twin", "base": "smoothgrad"})])
def test_a_signed_map_with_its_magnitude_in_the_box_beats_random_by_default(method, settings):
    random_energy, random_iou = scores(random_maps())
    assert random_energy.mean().item() == pytest.approx(0.25, abs=0.01) and (random_iou == 0.25).all()
    resolved = [settings_for_method(name, {}, method, settings) for name in BOX_METRICS]
    assert resolved == [{"rescale": "abs"}] * 2
    energy, iou = (make_metric(name, **resolved[k])(None, batch_of(signed_map()[None]))[name].item()
                   for k, name in enumerate(BOX_METRICS))
    assert (energy, iou) == pytest.approx(EXPECTED["abs"]) and energy > 0.9 > 0.3 > random_energy.max()
    # min-max moves the map's zero to mid-grey: it scores at random's level (the bug the default avoids)
    minmax_energy, minmax_iou = scores(signed_map()[None], rescale="minmax")
    assert minmax_energy.item() == pytest.approx(random_energy.mean().item(), abs=0.01)
    assert minmax_iou.item() == random_iou.mean().item() == 0.25


@pytest.mark.parametrize("method,settings,resolved", [
    ("gradient", {}, "abs"), ("smoothgrad", {}, "abs"), ("occlusion", {}, "abs"), ("lime", {}, "abs"),
    ("robust_counterpart", {"counterpart": "twin", "base": "smoothgrad"}, "abs"),
    ("robust_counterpart", {"counterpart": "twin"}, "abs"),  # the default base: smoothgrad
    ("robust_counterpart", {"counterpart": "twin", "base": "gradcam"}, "minmax"),
    ("gradcam", {}, "minmax"), ("rise", {}, "minmax"), ("explainer", {}, "minmax"), ("random", {}, "minmax"),
    ("meaningful_perturbation", {}, "minmax"), ("alignment_target", {}, "minmax")])
def test_settings_for_method_resolves_auto_from_the_sign_declaration(method, settings, resolved):
    entry = {"metric": "energy_in_box", "methods": [method], "images": 10}
    for given in ({}, {"rescale": "auto"}):
        for name in BOX_METRICS:
            assert settings_for_method(name, {**entry, **given}, method, settings) == {**entry, "rescale": resolved}
    for chosen in ("minmax", "abs", "positive", "none"):  # a protocol the config names stays
        assert settings_for_method("box_iou", {"rescale": chosen}, method, settings) == {"rescale": chosen}
    assert settings_for_method("pointing_game", {"tolerance": 0}, method, settings) == {"tolerance": 0}
    assert make_method(method, **settings).signed_maps is (resolved == "abs")


#: quick settings of the methods whose maps are checked on a tiny model
QUICK = {"rise": {"masks": 30, "cells": 3}, "alignment_target": {"samples": 4},
         "meaningful_perturbation": {"iterations": 5, "blur_sigma": 2, "jitter": 2}}
NON_NEGATIVE = [(name, QUICK.get(name, {})) for name in METHODS
                if not method_class(name).maps_signed(QUICK.get(name, {}))]


@pytest.fixture(scope="module")
def tiny_model():
    """A tiny ResNet with an explainer branch (which the explainer method reads), in eval mode; the
    branch's output bias makes its pre-activation take both signs, so its final ReLU has work to do."""
    torch.manual_seed(0)
    model = build_classifier("cifar_resnet_tiny", 10, (0.5,) * 3, (0.25,) * 3)
    model.explainer = build_branch(branch_settings(model.net, 32, {"widths": [8, 8, 4]}))
    with torch.no_grad():
        model.explainer.layers[-1].bias.fill_(0.1)  # pre-activation: 8 % of it negative
    return model.eval()


@pytest.mark.parametrize("name,settings", NON_NEGATIVE + [("robust_counterpart", {"counterpart": "twin",
                                                                                   "base": "gradcam"})])
def test_maps_declared_non_negative_have_no_negative_value(tiny_model, name, settings):
    assert {"gradcam", "gradcam_plus_plus", "rise", "random", "explainer"} <= {n for n, _ in NON_NEGATIVE}
    method = make_method(name, **settings)
    method.bind_models({key: tiny_model for key in type(method).needed_models(settings)})
    generator = torch.Generator().manual_seed(1)
    images, targets = torch.rand(3, 3, 32, 32, generator=generator), torch.tensor([1, 4, 7])
    maps = method.explain(tiny_model, images, targets)
    assert maps.shape == (3, 32, 32) and torch.isfinite(maps).all() and maps.amax() > 0
    assert (maps >= 0).all()


def test_the_protocol_is_recorded_in_the_metric_and_explainability_tables(tmp_path):
    from robustxai.aggregation.tables import MetricTable, explainability_table, long_metric_values
    from robustxai.attribution.shards import AttributionShard, write_shard
    from robustxai.data.splits import ImageSplit, save_split
    from robustxai.pipeline.metrics import metric_job, table_metadata

    split = tmp_path / "test.h5"
    save_split(ImageSplit(np.zeros((2, 16, 16, 3), np.uint8), np.zeros(2, np.int64), np.array([BOX] * 2), ["a"]), split)
    maps = {"gradient": torch.stack([signed_map(), -signed_map()]).numpy(), "rise": random_maps(2).numpy()}
    tables = []
    for method, method_maps in maps.items():
        shard = tmp_path / method / "shard-0.h5"
        write_shard(AttributionShard(method_maps, np.arange(2), np.zeros(2), np.zeros(2), np.ones((2, 1))), shard)
        metrics = {"energy_in_box": settings_for_method("energy_in_box", {}, method, {}), "pointing_game": {}}
        if method == "rise":  # a box metric left to decide per map
            metrics["box_iou"] = {}
        for metric, settings in metrics.items():
            path = tmp_path / method / f"{metric}.parquet"
            metric_job(metric, settings, [str(shard)], str(split), str(path))
            tables.append(MetricTable("m", method, metric, str(path)))
    about = table_metadata(tmp_path / "gradient" / "energy_in_box.parquet")
    assert about["rescale"] == about["settings"]["rescale"] == "abs"
    assert table_metadata(tmp_path / "rise" / "box_iou.parquet")["rescale"] == "auto"
    assert "rescale" not in table_metadata(tmp_path / "rise" / "pointing_game.parquet")
    long = long_metric_values(tables)
    assert set(long.loc[long["method"] == "gradient", "rescale"]) == {"abs", ""}
    table = explainability_table(long, pd.DataFrame({"model": ["m"]}), {"gradient": "gradient", "rise": "perturbation"},
                                 resamples=10).set_index("method")
    assert table.loc["gradient", "box_rescale"] == "abs"
    assert table.loc["gradient", "energy_in_box"] == pytest.approx(EXPECTED["abs"][0])
    assert table.loc["rise", "box_rescale"] == "energy_in_box: minmax, box_iou: auto"
    only_pointing = explainability_table(long[long["metric"] == "pointing_game"], pd.DataFrame({"model": ["m"]}),
                                         {"gradient": "gradient", "rise": "perturbation"}, resamples=10)
    assert (only_pointing["box_rescale"] == "").all()
