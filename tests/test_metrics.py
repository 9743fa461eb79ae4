import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from robustxai.attribution import make_method
from robustxai.metrics import METRICS, MetricBatch, degenerate_maps, make_metric, settings_for_method
from robustxai.metrics.causal import blurred_start, curve_auc, normalisation_mean, rise_kernel
from robustxai.metrics.localisation import component_box, largest_component_boxes
from robustxai.metrics.sanity import cascade_blocks, map_similarities
from robustxai.models import build_classifier
from robustxai.tuning import model_memory_format


def boxes_batch(n=8, size=32, seed=0):
    """Images with one box each, an oracle map (the box) and a random map."""
    generator = torch.Generator().manual_seed(seed)
    boxes = []
    for _ in range(n):
        x0, y0 = torch.randint(0, size // 2, (2,), generator=generator).tolist()
        w, h = torch.randint(4, size // 2, (2,), generator=generator).tolist()
        boxes.append([x0, y0, x0 + w, y0 + h])
    boxes = torch.tensor(boxes)
    images = torch.rand(n, 3, size, size, generator=generator)
    batch = MetricBatch(images, torch.zeros(n, size, size), torch.zeros(n, dtype=torch.long), boxes)
    oracle = batch.box_masks().float()
    random = torch.rand(n, size, size, generator=generator)
    return batch, oracle, random


def test_box_masks_and_component_box():
    batch, oracle, _ = boxes_batch(n=2)
    x0, y0, x1, y1 = batch.boxes[0].tolist()
    assert oracle[0].sum() == (x1 - x0) * (y1 - y0) and oracle[0, y0, x0] == 1 and oracle[0, y1 - 1, x1 - 1] == 1
    region = np.zeros((6, 6), bool)
    region[0, 0] = True
    region[2:4, 1:5] = True  # the larger component
    assert component_box(region) == (1, 2, 5, 4)
    assert component_box(np.zeros((3, 3), bool)) is None


@pytest.mark.parametrize("name,column", [("pointing_game", "pointing_game"), ("energy_in_box", "energy_in_box"),
                                         ("box_iou", "box_iou")])
def test_the_oracle_map_beats_random_on_every_localisation_metric(name, column):
    batch, oracle, random = boxes_batch()
    metric = make_metric(name)
    batch.maps = oracle
    oracle_values = metric(None, batch)[column]
    batch.maps = random
    random_values = metric(None, batch)[column]
    assert torch.allclose(oracle_values, torch.ones_like(oracle_values))
    assert random_values.mean() < 0.9 * oracle_values.mean()


def test_energy_of_a_random_map_is_about_the_box_share():
    batch, _, random = boxes_batch(n=64)
    batch.maps = random
    energy = make_metric("energy_in_box")(None, batch)["energy_in_box"]
    assert torch.allclose(energy, batch.box_masks().float().mean((1, 2)), atol=0.05)


def test_pointing_game_hits_and_misses_at_the_tolerance_boundary():
    size = 224  # the tolerance (15 px) is given at 224 px, so it is used unscaled here
    boxes = torch.tensor([[100, 100, 120, 120]] * 4)
    maps = torch.zeros(4, size, size)
    maps[0, 110, 119 + 15] = 1   # 15 px right of the box's last column: hit
    maps[1, 110, 119 + 16] = 1   # 16 px: miss
    maps[2, 100 - 9, 100 - 12] = 1  # 9, 12 px diagonal = 15 px: hit
    maps[3, 100 - 10, 100 - 12] = 1  # 15.6 px: miss
    batch = MetricBatch(torch.zeros(4, 3, size, size), maps, torch.zeros(4, dtype=torch.long), boxes)
    assert make_metric("pointing_game")(None, batch)["pointing_game"].tolist() == [1.0, 0.0, 1.0, 0.0]
    small = MetricBatch(torch.zeros(1, 3, 32, 32), torch.zeros(1, 32, 32), torch.zeros(1, dtype=torch.long),
                        torch.tensor([[10, 10, 20, 20]]))
    small.maps[0, 15, 22] = 1  # 3 px away: 15 px at 224 is 2.14 px at 32, a miss
    assert make_metric("pointing_game")(None, small)["pointing_game"].item() == 0.0


def smooth_maps(n=6, size=32, seed=0):
    """Blobby maps (random noise averaged over 7 x 7): several components above 20 % of their range."""
    generator = torch.Generator().manual_seed(seed)
    return nn.functional.avg_pool2d(torch.rand(n, 1, size, size, generator=generator), 7, 1, 3)[:, 0]


@pytest.mark.parametrize("protocol,offsets", [
    ("minmax", (0.6, -0.3, 5.0)),  # a floor like RISE's, negative, large
    ("rise", (0.6, -0.3, 5.0)),  # resolved for a method declaring non-negative maps: minmax
    ("auto", (0.6, 5.0)),  # left to each map: non-negative maps stay non-negative, so minmax
])
def test_box_iou_and_energy_of_a_map_plus_a_constant_are_those_of_the_map(protocol, offsets):
    batch, _, _ = boxes_batch(n=6)
    maps = smooth_maps()  # non-negative
    metrics = []
    for name in ("box_iou", "energy_in_box"):
        settings = settings_for_method(name, {}, "rise", {}) if protocol == "rise" else {"rescale": protocol}
        metrics.append(make_metric(name, **settings))
    assert protocol != "rise" or {m.rescale for m in metrics} == {"minmax"}
    batch.maps = maps
    plain = {**metrics[0](None, batch), **metrics[1](None, batch)}
    for offset in offsets:
        batch.maps = maps + offset
        shifted = {**metrics[0](None, batch), **metrics[1](None, batch)}
        assert torch.equal(shifted["box_iou"], plain["box_iou"])
        assert torch.allclose(shifted["energy_in_box"], plain["energy_in_box"], atol=1e-5)
    assert plain["box_iou"].min() > 0 and plain["energy_in_box"].std() > 0.02  # not trivially equal


def floor_and_block():
    """An 8 x 8 map on a floor of 0.5 with a 2 x 2 block of 1.0 at rows and columns 2-3; the box
    (1, 1, 4, 4) holds the block and 5 floor pixels."""
    maps = torch.full((1, 8, 8), 0.5)
    maps[0, 2:4, 2:4] = 1.0
    return MetricBatch(torch.zeros(1, 3, 8, 8), maps, torch.zeros(1, dtype=torch.long), torch.tensor([[1, 1, 4, 4]]))


def test_raw_box_metrics_keep_the_values_of_the_raw_map():
    batch = floor_and_block()
    # raw: 20 % of the maximum (0.2) keeps the whole image, IoU 9 / 64; mass in the box 4 + 5 x 0.5 of 34
    raw_iou = make_metric("box_iou", rescale="none")(None, batch)
    assert raw_iou["box_iou"].item() == pytest.approx(9 / 64) and raw_iou["box_localised"].item() == 0.0
    assert make_metric("energy_in_box", rescale="none")(None, batch)["energy_in_box"].item() == pytest.approx(6.5 / 34)
    # min-max (the default, auto, for a non-negative map): the floor is 0, only the block is kept (IoU 4 / 9)
    # and holds all the mass
    assert make_metric("box_iou")(None, batch)["box_iou"].item() == pytest.approx(4 / 9)
    assert make_metric("energy_in_box")(None, batch)["energy_in_box"].item() == pytest.approx(1.0)
    # raw negative values carry no mass and a map without a positive value keeps no pixel
    batch.maps = batch.maps - 0.75  # floor -0.25, block 0.25
    assert make_metric("energy_in_box", rescale="none")(None, batch)["energy_in_box"].item() == pytest.approx(1.0)
    batch.maps = -batch.maps.abs()
    assert make_metric("box_iou", rescale="none")(None, batch)["box_iou"].item() == 0.0
    assert make_metric("energy_in_box", rescale="none")(None, batch)["energy_in_box"].item() == pytest.approx(9 / 64)


@pytest.mark.parametrize("rescale", ["auto", "minmax", "abs", "positive", "none"])
@pytest.mark.parametrize("level", [0.5, -0.5])
def test_a_constant_map_scores_the_box_share_and_a_region_where_it_has_mass(rescale, level):
    batch = floor_and_block()
    batch.maps = torch.full((1, 8, 8), level)
    assert degenerate_maps(batch.maps).item()
    energy = make_metric("energy_in_box", rescale=rescale)(None, batch)["energy_in_box"].item()
    assert energy == pytest.approx(9 / 64)  # like a uniform map, with mass or without
    # mass everywhere (|map|, a positive part of 0.5, auto's abs for the negative map): the whole image is
    # kept; none (min-max, auto's choice for the positive map, no positive part): no pixel is kept
    whole_image = (rescale == "abs" or (rescale in ("positive", "none") and level > 0)
                   or (rescale == "auto" and level < 0))
    iou = make_metric("box_iou", rescale=rescale)(None, batch)["box_iou"].item()
    assert iou == (pytest.approx(9 / 64) if whole_image else 0.0)


def test_rescale_must_be_a_known_protocol():
    for name in ("energy_in_box", "box_iou"):
        with pytest.raises(ValueError, match=r"^rescale must be one of \['auto', 'minmax', 'abs', 'positive', "
                                             r"'none'\], got 'max'$"):
            make_metric(name, rescale="max")


def test_box_metrics_leave_the_thread_count_as_it_was():
    batch = floor_and_block()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for name in ("pointing_game", "energy_in_box", "box_iou"):
            make_metric(name)(None, batch)
            assert torch.get_num_threads() == 2, name
    finally:
        torch.set_num_threads(before)


def test_batched_components_are_those_of_each_image_alone():
    from scipy import ndimage

    regions = np.concatenate([(smooth_maps(n=8, seed=1) > 0.5).numpy(), np.zeros((1, 32, 32), bool),
                              np.random.default_rng(0).random((3, 32, 32)) < 0.5])
    regions[4] = False  # an empty region between others
    for region, box in zip(regions, largest_component_boxes(regions)):
        labels, count = ndimage.label(region)  # per image, the largest component, the lowest label on ties
        if count == 0:
            assert box.tolist() == [-1, -1, -1, -1]
            continue
        rows, cols = np.nonzero(labels == 1 + np.argmax(np.bincount(labels.ravel())[1:]))
        assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


class RegionMean(nn.Module):
    """Two classes: logit_0 = scale * mean(x over a region and channels), logit_1 = 0."""

    def __init__(self, region, scale=4.0):
        super().__init__()
        self.region, self.scale = region, scale

    def forward(self, x):
        mean = (x.mean(1) * self.region).flatten(1).sum(1) / self.region.sum()
        return torch.stack([self.scale * mean, torch.zeros_like(mean)], 1)


def test_deletion_auc_of_the_oracle_ordering_by_hand():
    region = torch.zeros(16, 16)
    region[2:6, 4:12] = 1  # 32 pixels = two steps of 16
    images = region.expand(1, 3, 16, 16).clone()  # 1 inside the region, 0 outside
    model = RegionMean(region)
    batch = MetricBatch(images, region[None].clone(), torch.tensor([0]), torch.tensor([[4, 2, 12, 6]]))
    values = make_metric("deletion", steps=16)(model, batch)
    # substrate = 0.5 (no normalisation layer): after k steps the region's mean is 1 - 0.25 min(k, 2)
    scores = [1 / (1 + math.exp(-4 * (1 - 0.25 * min(k, 2)))) for k in range(17)]
    expected = (sum(scores) - scores[0] / 2 - scores[-1] / 2) / 16
    assert values["deletion"].item() == pytest.approx(expected, abs=1e-6)
    assert values["deletion_start"].item() == pytest.approx(scores[0], abs=1e-6)
    # the reverse ordering deletes the region last: a larger (worse) deletion AUC
    batch.maps = 1 - batch.maps
    assert make_metric("deletion", steps=16)(model, batch)["deletion"].item() > expected + 0.05


def reference_causal_auc(model, image, saliency, mode, step, substrate, target):
    """RISE's CausalMetric.single_run, unbatched, one step at a time (eclique/RISE evaluation.py),
    scoring the class predicted on the clean image."""
    _, c, h, w = image.shape
    hw = h * w
    n_steps = (hw + step - 1) // step
    if mode == "del":
        start, finish = image.clone(), substrate.clone()
    else:
        start, finish = substrate.clone(), image.clone()
    order = np.argsort(-saliency.reshape(-1), kind="stable")
    scores = np.empty(n_steps + 1)
    for i in range(n_steps + 1):
        with torch.no_grad():
            scores[i] = model(start).softmax(1)[0, target].item()
        if i < n_steps:
            coords = order[step * i:step * (i + 1)]
            flat_start, flat_finish = start.view(1, c, hw), finish.view(1, c, hw)
            flat_start[0, :, coords] = flat_finish[0, :, coords]
    return (scores.sum() - scores[0] / 2 - scores[-1] / 2) / (len(scores) - 1)


def test_insertion_and_deletion_match_the_unbatched_reference():
    torch.manual_seed(0)
    model = build_classifier("cifar_resnet_tiny", 10, mean=(0.4, 0.5, 0.6), std=(0.25, 0.25, 0.25)).eval()
    images, maps = torch.rand(3, 3, 32, 32), torch.rand(3, 32, 32)
    with torch.no_grad():
        targets = model(images).argmax(1)
    batch = MetricBatch(images, maps, targets, torch.zeros(3, 4, dtype=torch.long))
    deletion = make_metric("deletion", steps=40, batch_size=17)(model, batch)["deletion"]
    insertion = make_metric("insertion", steps=40, batch_size=17)(model, batch)["insertion"]
    fast_model = copy.deepcopy(model).to(memory_format=torch.channels_last)  # tuned batch size and layout
    fast_deletion = make_metric("deletion", steps=40)(fast_model, batch)["deletion"]
    fast_insertion = make_metric("insertion", steps=40)(fast_model, batch)["insertion"]
    mean = normalisation_mean(model, 3)
    assert torch.allclose(mean, torch.tensor([0.4, 0.5, 0.6]))
    step = math.ceil(32 * 32 / 40)
    for i in range(3):
        grey = mean.view(1, 3, 1, 1).expand(1, 3, 32, 32)
        blurred = blurred_start(images[i:i + 1], mean)
        expected_del = reference_causal_auc(model, images[i:i + 1], maps[i].numpy(), "del", step, grey, targets[i])
        expected_ins = reference_causal_auc(model, images[i:i + 1], maps[i].numpy(), "ins", step, blurred, targets[i])
        assert deletion[i].item() == pytest.approx(expected_del, abs=1e-4)
        assert insertion[i].item() == pytest.approx(expected_ins, abs=1e-4)
        assert fast_deletion[i].item() == pytest.approx(expected_del, abs=1e-4)
        assert fast_insertion[i].item() == pytest.approx(expected_ins, abs=1e-4)


def rise_gkern(klen, nsig):
    """RISE's gkern (eclique/RISE evaluation.py): a delta filtered by scipy's gaussian_filter, as a
    (3, 3, klen, klen) conv2d weight acting on each channel alone."""
    from scipy.ndimage import gaussian_filter

    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    k = gaussian_filter(inp, nsig)
    kern = np.zeros((3, 3, klen, klen))
    kern[0, 0] = k
    kern[1, 1] = k
    kern[2, 2] = k
    return torch.from_numpy(kern.astype("float32"))


def rise_insertion(model, img_tensor, explanation, step, klen=11, nsig=5):
    """RISE's CausalMetric('ins', step, blur).single_run on the CPU (eclique/RISE evaluation.py, HW
    taken from the image): ``model`` ends in a softmax and takes normalised images, as in RISE's
    notebook; returns the AUC of its scores, RISE's ``auc``."""
    kern = rise_gkern(klen, nsig)
    blur = lambda x: nn.functional.conv2d(x, kern, padding=klen // 2)  # noqa: E731 (as RISE writes it)
    hw = img_tensor.shape[2] * img_tensor.shape[3]
    with torch.no_grad():
        pred = model(img_tensor)
        c = torch.max(pred, 1)[1].numpy()[0]
        n_steps = (hw + step - 1) // step
        start, finish = blur(img_tensor), img_tensor.clone()
        scores = np.empty(n_steps + 1)
        salient_order = np.flip(np.argsort(explanation.reshape(-1, hw), axis=1), axis=-1)
        for i in range(n_steps + 1):
            scores[i] = model(start)[0, c]
            if i < n_steps:
                coords = salient_order[:, step * i:step * (i + 1)]
                start.numpy().reshape(1, 3, hw)[0, :, coords] = finish.numpy().reshape(1, 3, hw)[0, :, coords]
    return (scores.sum() - scores[0] / 2 - scores[-1] / 2) / (scores.shape[0] - 1)


@pytest.mark.parametrize("size, sigma", [(11, 5), (11, 2.5), (5, 1), (21, 10)])
def test_rise_kernel_is_rise_gkern(size, sigma):
    assert torch.allclose(rise_kernel(size, sigma), rise_gkern(size, sigma)[0, 0], rtol=0, atol=1e-7)


def test_insertion_equals_rise_reference_code():
    torch.manual_seed(1)
    model = build_classifier("cifar_resnet_tiny", 10, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3)).eval()
    rise_model = nn.Sequential(model.net, nn.Softmax(dim=1)).eval()  # RISE's models take normalised images
    images, maps = torch.rand(3, 3, 32, 32), torch.rand(3, 32, 32)  # no ties in the maps
    with torch.no_grad():
        targets = model(images).argmax(1)
    batch = MetricBatch(images, maps, targets, torch.zeros(3, 4, dtype=torch.long))
    # RISE's step of 40 pixels: (1024 + 39) // 40 = 26 steps, the last one 24 pixels; 26 steps here
    values = make_metric("insertion", steps=26, batch_size=20)(model, batch)
    for i in range(3):
        with torch.no_grad():
            normalised = model.normalize(images[i:i + 1])
        expected = rise_insertion(rise_model, normalised, maps[i].numpy(), step=40)
        assert values["insertion"][i].item() == pytest.approx(expected, abs=1e-5)


def test_insertion_flags_a_blurred_start_more_confident_than_the_clean_image():
    region = torch.zeros(16, 16)
    region[6:10, 6:10] = 1
    model = RegionMean(region)
    images = torch.stack([1 - region, region]).unsqueeze(1).expand(2, 3, 16, 16).clone()
    # image 0: a dark region in a bright image, which the blur brightens (class 0 gains); image 1 the reverse
    batch = MetricBatch(images, torch.rand(2, 16, 16), torch.tensor([0, 0]), torch.zeros(2, 4, dtype=torch.long))
    values = make_metric("insertion", steps=8, batch_size=9)(model, batch)
    assert values["insertion_start_above_clean"].tolist() == [1.0, 0.0]
    assert values["insertion_start"][0] > values["insertion_end"][0] == pytest.approx(0.5)


@pytest.mark.parametrize("setting, message", [({"blur_size": 10}, "blur_size must be an odd integer >= 1, got 10"),
                                              ({"blur_sigma": 0}, "blur_sigma must be > 0, got 0")])
def test_insertion_blur_settings_are_checked(setting, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        make_metric("insertion", **setting)


def test_causal_metric_inputs_are_stored_like_the_model():
    model = build_classifier("cifar_resnet_tiny", 10).eval()
    assert model_memory_format(model) == torch.contiguous_format
    model.to(memory_format=torch.channels_last)
    assert model_memory_format(model) == torch.channels_last
    seen = []
    model.register_forward_pre_hook(
        lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    no_boxes = torch.zeros(2, 4, dtype=torch.long)
    batch = MetricBatch(torch.rand(2, 3, 32, 32), torch.rand(2, 32, 32), torch.zeros(2, dtype=torch.long), no_boxes)
    make_metric("deletion", steps=8, batch_size=6)(model, batch)
    assert len(seen) == 3 and all(seen)  # 2 x 9 curve points in batches of 6, each channels-last


def test_blurred_start_is_the_rise_blur_in_normalised_space():
    flat = torch.full((1, 3, 20, 20), 0.3)
    mean = torch.tensor([0.3, 0.3, 0.3])
    assert torch.allclose(blurred_start(flat, mean), flat, atol=1e-6)  # mean-coloured padding keeps it flat
    dot = torch.full((1, 3, 21, 21), 0.3)
    dot[..., 10, 10] = 1.3
    blurred = blurred_start(dot, mean)
    assert blurred[0, 0, 10, 10] < 0.31 + 0.05 and blurred[0, 0, 10, 15] > 0.3  # spread over the 11 x 11 kernel
    assert blurred[0, 0, 10, 16] == pytest.approx(0.3)


def test_curve_auc_trapezoid():
    assert curve_auc(torch.tensor([[1.0, 1.0, 1.0]])).item() == 1.0
    assert curve_auc(torch.tensor([[1.0, 0.0]])).item() == 0.5


def test_degenerate_maps_get_defined_values_and_are_flagged():
    batch, oracle, _ = boxes_batch(n=3)
    maps = oracle.clone()
    maps[1] = 0.0  # constant
    maps[2, 0, 0] = float("nan")  # a NaN
    batch.maps = maps
    assert degenerate_maps(maps).tolist() == [False, True, True]
    for name in ("pointing_game", "energy_in_box", "box_iou"):
        values = next(iter(make_metric(name)(None, batch).values()))
        assert torch.isfinite(values).all(), name
    energy = make_metric("energy_in_box")(None, batch)["energy_in_box"]
    assert energy[1] == pytest.approx(batch.box_masks()[1].float().mean().item())  # like a uniform map
    model = build_classifier("cifar_resnet_tiny", 10).eval()
    deletion = make_metric("deletion", steps=8)(model, batch)["deletion"]
    assert torch.isfinite(deletion).all()


def test_similarities_of_identical_and_unrelated_maps():
    generator = np.random.default_rng(0)
    a = generator.random((32, 32))
    same = map_similarities(a, a, hog_cell=8)
    assert same == pytest.approx({"spearman_abs": 1.0, "spearman_signed": 1.0, "ssim": 1.0, "hog": 1.0})
    other = map_similarities(a, generator.random((32, 32)), hog_cell=8)
    assert abs(other["spearman_signed"]) < 0.1 and other["ssim"] < 0.3
    assert map_similarities(a, np.zeros((32, 32)), hog_cell=8)["ssim"] == 0.0  # undefined counts as 0
    flipped = map_similarities(a - 0.5, 0.5 - a, hog_cell=8)
    assert flipped["spearman_signed"] == pytest.approx(-1.0) and flipped["spearman_abs"] == pytest.approx(1.0)


def test_cascading_randomisation_of_a_cnn():
    torch.manual_seed(0)
    model = build_classifier("cifar_resnet_tiny", 10).eval()
    blocks = cascade_blocks(model)
    assert blocks[0].endswith("fc") and blocks[-1] == "net.conv1" and "net.layer4.0" in blocks
    vgg_blocks = cascade_blocks(build_classifier("cifar_vgg_tiny", 10))
    assert len(vgg_blocks) > 3 and all(name.startswith("net.") for name in vgg_blocks)
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        targets = model(images).argmax(1)
    method = make_method("gradient")
    batch = MetricBatch(images, method.explain(model, images, targets), targets, torch.zeros(4, 4, dtype=torch.long),
                        method=method)
    before = [p.clone() for p in model.parameters()]
    columns = make_metric("sanity_randomisation", blocks=3)(model, batch)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))  # the model itself is untouched
    assert len(columns) == 3 * 4 and all(len(v) == 4 for v in columns.values())
    last = [name for name in columns if name.startswith("spearman_abs@3_")]
    assert len(last) == 1 and columns[last[0]].mean() < 0.9
    with pytest.raises(ValueError, match="needs the attribution method"):
        make_metric("sanity_randomisation")(model, MetricBatch(images, batch.maps, targets, batch.boxes))


def test_boundary_alignment_of_the_gradient_of_a_linear_model_is_one():
    class Linear(nn.Module):  # logit_0 = w.x + b, logit_1 = 0: the boundary's normal is w
        def __init__(self):
            super().__init__()
            self.w = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.05

        def forward(self, x):
            return torch.stack([(x * self.w).flatten(1).sum(1) - (0.5 * self.w).sum() + 0.2,
                                torch.zeros(len(x))], 1)

    model = Linear()
    images = torch.full((2, 3, 8, 8), 0.5)
    targets = torch.tensor([0, 0])
    maps = make_method("gradient").explain(model, images, targets)
    batch = MetricBatch(images, maps, targets, torch.zeros(2, 4, dtype=torch.long))
    values = make_metric("boundary_alignment", pgd_steps=20, cw_steps=50)(model, batch)
    assert values["boundary_found"].tolist() == [1.0, 1.0]
    assert (values["boundary_alignment"] > 0.99).all()
    batch.maps = -maps
    assert (make_metric("boundary_alignment", pgd_steps=20, cw_steps=50)(model, batch)["boundary_alignment"] < -0.99).all()


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        make_metric("auc")
    with pytest.raises(ValueError, match="metric 'deletion'"):
        make_metric("deletion", step=3)
    with pytest.raises(ValueError, match="metric 'boundary_alignment'"):
        make_metric("boundary_alignment", pgd_step=3)
    assert {"insertion", "deletion", "pointing_game", "energy_in_box", "box_iou", "sanity_randomisation",
            "boundary_alignment", "road"} == set(METRICS)
