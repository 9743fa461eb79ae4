"""ImageNet OOD sets as dataset splits: the package lists, the readers on stand-in trees (V2's folder
order, A/R class subsets, ImageNet-C's corruption/severity layout) and their scores (A/R predicted
among their classes, ImageNet-C's per-corruption means and mCE) against hand computations."""
import math
import tarfile

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from robustxai.config import SCHEMA_PATH, ConfigError, all_split_names, check_download_checksums, validate_config
from robustxai.data.download import download, file_digest
from robustxai.data.extract import extract_archives
from robustxai.data.imagenet_ood import OOD_FORMATS, ood_format
from robustxai.data.imagenet_ood.lists import alexnet_corruption_errors, imagenet_wnids, subset_indices, wnid_subset
from robustxai.data.kinds import dataset_kind
from robustxai.data.splits import iter_split, load_split
from robustxai.evaluation.ood import ood_scores, predict_among
from robustxai.pipeline.datasets import prepare_dataset

WNIDS = imagenet_wnids()
A_CLASSES = [6, 11, 13]  # the first three ImageNet-A classes (thousand_k_to_200: 6 -> 0, 11 -> 1, 13 -> 2)
R_CLASSES = [1, 2, 4]  # the first three ImageNet-R classes (goldfish, great white shark, hammerhead)
NOT_IN_A_OR_R = 0  # tench: in neither subset
# AugMix's ALEXNET_ERR (google-research/augmix imagenet.py): AlexNet's error per corruption, mean over severities
AUGMIX_ALEXNET_MEANS = [0.886428, 0.894468, 0.922640, 0.819880, 0.826268, 0.785948, 0.798360, 0.866816, 0.826572,
                        0.819324, 0.564592, 0.853204, 0.646056, 0.717840, 0.606500]


def test_class_lists_are_200_sorted_unique_imagenet_wnids_and_differ():
    timm_info = pytest.importorskip("timm.data").ImageNetInfo()
    assert len(WNIDS) == 1000 and list(WNIDS) == sorted(set(WNIDS)) == list(timm_info.label_names())
    lists = {name: wnid_subset(f"{name}_wnids.txt") for name in ("imagenet_a", "imagenet_r")}
    for wnids in lists.values():
        assert len(wnids) == 200 and wnids == sorted(set(wnids)) and set(wnids) <= set(WNIDS)
    assert len(set(lists["imagenet_a"]) & set(lists["imagenet_r"])) == 86  # different subsets
    a, r = subset_indices("imagenet_a_wnids.txt"), subset_indices("imagenet_r_wnids.txt")
    assert a[:3].tolist() == A_CLASSES and a[-1] == 988 and r[:3].tolist() == R_CLASSES and r[-1] == 988
    assert ood_format("imagenet_a").label_subset().tolist() == a.tolist()
    assert ood_format("imagenet_sketch").label_subset() is None


def test_alexnet_errors_average_to_the_published_per_corruption_errors():
    errors = alexnet_corruption_errors()
    assert list(errors)[:3] == ["gaussian_noise", "shot_noise", "impulse_noise"] and len(errors) == 15
    assert [np.mean(levels) for levels in errors.values()] == pytest.approx(AUGMIX_ALEXNET_MEANS, abs=1e-6)


def test_schema_formats_are_the_registry_and_split_names_cannot_shadow_the_others():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert sorted(schema["definitions"]["ood_set"]["properties"]["format"]["enum"]) == sorted(OOD_FORMATS)
    config = {"dataset": {"name": "n", "kind": "imagefolder", "imagefolder": {
        "num_classes": 1000, "splits": {"test": {"images": "t"}}, "ood": {"test": {"format": "imagenet_a", "images": "a"}}}},
        "models": {"m": {"arch": "resnet18"}}}
    with pytest.raises(ConfigError, match=r"config.dataset.imagefolder.ood: 'test' does not match"):
        validate_config(config)


def test_subset_logits_are_restricted_before_argmax_and_softmax():
    logits = torch.tensor([[0.0, 2.0, 1.0, 3.0], [0.0, 1.0, 2.0, 0.5]])
    predicted, confidence = predict_among(logits, np.array([1, 2]))
    assert predicted.tolist() == [1, 2]  # class 3 (the overall argmax of row 0) is outside the subset
    assert confidence.tolist() == pytest.approx([1 / (1 + math.exp(-1))] * 2)
    predicted, confidence = predict_among(logits, None)
    assert predicted.tolist() == [3, 2]


class ImageIdModel(nn.Module):
    """Fixed logits per stand-in image: the image's id is its red value // 4 (images are one colour)."""

    def __init__(self, logits: dict[int, torch.Tensor]):
        super().__init__()
        self.table = nn.Parameter(torch.stack([logits.get(i, torch.zeros(1000)) for i in range(64)]),
                                  requires_grad=False)

    def forward(self, x):
        return self.table[(x[:, 0, 0, 0] * 255).round().long() // 4]


class StandIns:
    """Writes one-colour PNGs whose colour encodes an id, and the logits the model gives each id."""

    def __init__(self):
        self.next_id, self.logits = 0, {}

    def image(self, folder, label: int, top: int | None = None, name: str | None = None) -> int:
        """An image of class ``label`` whose logits peak at ``top`` (default the label), 3 below at the label."""
        folder.mkdir(parents=True, exist_ok=True)
        image_id, self.next_id = self.next_id, self.next_id + 1
        Image.fromarray(np.full((10, 12, 3), (4 * image_id + 2, 7, 9), dtype=np.uint8)).save(
            folder / f"{name or image_id:>04}.png")
        logits = torch.zeros(1000)
        logits[label] = 3.0
        logits[label if top is None else top] = 5.0
        self.logits[image_id] = logits
        return image_id


def prepare(tmp_path, ood: dict, stand_ins: StandIns) -> dict[str, str]:
    """A stand-in ImageNet val tree (1000 wnid folders, one image) plus ``ood``, prepared as .h5 splits."""
    for wnid in WNIDS:
        (tmp_path / "val" / wnid).mkdir(parents=True)
    stand_ins.image(tmp_path / "val" / WNIDS[5], 5)
    dataset = {"name": "inet", "kind": "imagefolder", "image_size": 8, "seed": 0,
               "imagefolder": {"num_classes": 1000, "splits": {"test": {"images": str(tmp_path / "val")}}, "ood": ood}}
    outputs = {name: str(tmp_path / "out" / f"{name}.h5") for name in all_split_names(dataset)}
    prepare_dataset(dataset, outputs)
    assert all_split_names(dataset) == ["test", *ood, "ood_corruption"]
    assert not any(dataset_kind("imagefolder").has_boxes(dataset, name) for name in ood)
    return outputs


def test_a_and_r_accuracy_through_their_masks_equals_the_hand_count(tmp_path):
    stand_ins = StandIns()
    for root, classes in ((tmp_path / "a", A_CLASSES), (tmp_path / "r", R_CLASSES)):
        first, second, third = classes
        stand_ins.image(root / WNIDS[first], first, top=NOT_IN_A_OR_R)  # right only through the mask
        stand_ins.image(root / WNIDS[first], first)  # right
        stand_ins.image(root / WNIDS[second], second, top=NOT_IN_A_OR_R)  # right only through the mask
        stand_ins.image(root / WNIDS[second], second, top=third)  # wrong: another class of the set
        stand_ins.image(root / WNIDS[third], third, top=first)  # wrong
    outputs = prepare(tmp_path, {"inet_a": {"format": "imagenet_a", "images": str(tmp_path / "a")},
                                 "inet_r": {"format": "imagenet_r", "images": str(tmp_path / "r")}}, stand_ins)
    model = ImageIdModel(stand_ins.logits)
    for name, classes, subset_file in (("inet_a", A_CLASSES, "imagenet_a_wnids.txt"),
                                       ("inet_r", R_CLASSES, "imagenet_r_wnids.txt")):
        split = load_split(outputs[name])
        assert split.labels.tolist() == [classes[0], classes[0], classes[1], classes[1], classes[2]]
        assert split.label_subset.tolist() == subset_indices(subset_file).tolist()
        assert len(split.class_names) == 1000 and split.masks is None and (split.boxes == -1).all()
        scores, cells = ood_scores(model, name, (part for _, part in iter_split(outputs[name], 2)), batch_size=2)
        assert scores[f"ood_accuracy_{name}"] == pytest.approx(3 / 5) and cells == []  # 1 / 5 without the mask
        # softmax over the 200 classes: rescued rows 3 at the label, right 5 at it, wrong 5 and 3, the rest 0
        rescued, right = math.exp(3) / (math.exp(3) + 199), math.exp(5) / (math.exp(5) + 199)
        wrong = math.exp(5) / (math.exp(5) + math.exp(3) + 198)
        assert scores[f"ood_confidence_{name}"] == pytest.approx((2 * rescued + right + 2 * wrong) / 5)


def test_v2_folder_10_is_class_10_not_the_second_sorted_name(tmp_path):
    stand_ins = StandIns()
    for folder in ("2", "10", "1", "999"):
        stand_ins.image(tmp_path / "v2" / folder, int(folder), name="a")
    stand_ins.image(tmp_path / "v2" / "10", 10, name="b")
    outputs = prepare(tmp_path, {"v2": {"format": "imagenet_v2", "images": str(tmp_path / "v2"),
                                        "images_per_class": 1}}, stand_ins)
    split = load_split(outputs["v2"])
    assert split.labels.tolist() == [1, 2, 10, 999] and split.label_subset is None
    assert split.images[2, 0, 0, 0] == 4 * 1 + 2  # folder 10's first file (image id 1), not 10/b
    scores, _ = ood_scores(ImageIdModel(stand_ins.logits), "v2", [split])
    assert scores["ood_accuracy_v2"] == 1.0
    (tmp_path / "v2" / WNIDS[0]).mkdir()
    with pytest.raises(ValueError, match=r"folders \['n01440764'\] are not class indices 0..999"):
        list(ood_format("imagenet_v2").parts({"images": str(tmp_path / "v2")}, 8))
    (tmp_path / "v2" / WNIDS[0]).rmdir()
    (tmp_path / "v2" / "\u00b2").mkdir()  # '²': str.isdigit() says yes, int() refuses it
    with pytest.raises(ValueError, match=r"folders \['\u00b2'\] are not class indices 0..999"):
        list(ood_format("imagenet_v2").parts({"images": str(tmp_path / "v2")}, 8))


def test_imagenet_c_per_corruption_means_and_mce_equal_hand_values(tmp_path):
    stand_ins = StandIns()
    wrong = {("gaussian_noise", 1): 1, ("gaussian_noise", 3): 2, ("contrast", 1): 0, ("contrast", 3): 3}
    for (corruption, severity), errors in wrong.items():
        for k, label in enumerate([7, 7, 300, 300]):
            stand_ins.image(tmp_path / "c" / corruption / str(severity) / WNIDS[label], label,
                            top=label + 1 if k < errors else None)
        stand_ins.image(tmp_path / "c" / corruption / str(severity) / WNIDS[300], 300, name="zzz")  # over the cap
    stand_ins.image(tmp_path / "c" / "fog" / "1" / WNIDS[7], 7)  # not selected
    outputs = prepare(tmp_path, {"inet_c": {"format": "imagenet_c", "images": str(tmp_path / "c"),
                                            "corruptions": ["gaussian_noise", "contrast"], "severities": [1, 3],
                                            "images_per_class": 2}}, stand_ins)
    split = load_split(outputs["inet_c"])
    assert len(split) == 16 and split.extras["corruption"].tolist()[::4] == ["gaussian_noise"] * 2 + ["contrast"] * 2
    assert split.extras["severity"].tolist()[::4] == [1, 3, 1, 3]
    assert split.extras["alexnet_error"].tolist()[::4] == [0.69528, 0.93554, 0.64548, 0.88874]
    scores, cells = ood_scores(ImageIdModel(stand_ins.logits), "inet_c",
                               (part for _, part in iter_split(outputs["inet_c"], 3)), batch_size=2)
    assert [c["accuracy"] for c in cells] == [0.75, 0.5, 1.0, 0.25] and {c["images"] for c in cells} == {4}
    assert scores["ood_accuracy_inet_c"] == pytest.approx(10 / 16)
    assert scores["ood_accuracy_inet_c_gaussian_noise"] == pytest.approx(0.625)  # (0.75 + 0.5) / 2
    assert scores["ood_accuracy_inet_c_contrast"] == pytest.approx(0.625)  # (1.0 + 0.25) / 2
    mce = ((0.25 + 0.5) / (0.69528 + 0.93554) + (0.0 + 0.75) / (0.64548 + 0.88874)) / 2
    assert scores["mce_inet_c"] == pytest.approx(mce)


def test_ood_sets_need_the_imagenet_class_order_and_their_own_layout(tmp_path):
    stand_ins = StandIns()
    stand_ins.image(tmp_path / "val" / WNIDS[3], 3)
    stand_ins.image(tmp_path / "a" / WNIDS[NOT_IN_A_OR_R], NOT_IN_A_OR_R)
    dataset = {"name": "inet", "kind": "imagefolder", "image_size": 8, "imagefolder": {
        "num_classes": 1000, "splits": {"test": {"images": str(tmp_path / "val")}}, "class_names": "folders",
        "ood": {"inet_a": {"format": "imagenet_a", "images": str(tmp_path / "a")}}}}
    with pytest.raises(ConfigError, match="1000 ImageNet wnids in sorted order"):
        dataset_kind("imagefolder").split_parts(dataset, None)
    del dataset["imagefolder"]["class_names"]  # wnid folders default to the ImageNet order: a subset is fine
    dataset["imagefolder"]["ood"] = {"sketch": {"format": "imagenet_sketch", "images": str(tmp_path / "a")}}
    assert set(dataset_kind("imagefolder").split_parts(dataset, None)) == {"test", "sketch"}
    with pytest.raises(ValueError, match=r"folders \['n01440764'\] are not imagenet_a classes"):
        list(ood_format("imagenet_a").parts({"images": str(tmp_path / "a")}, 8))
    with pytest.raises(FileNotFoundError, match="no ImageNet-C folder for corruption 'snow' at severity 2"):
        list(ood_format("imagenet_c").parts({"images": str(tmp_path / "a"), "corruptions": ["snow"],
                                             "severities": [2]}, 8))


def test_set_archives_are_verified_then_unpacked_into_the_set_folder(tmp_path):
    stand_ins = StandIns()
    for label in A_CLASSES[:2]:
        stand_ins.image(tmp_path / "src" / "imagenet-a" / WNIDS[label], label)
    with tarfile.open(tmp_path / "imagenet-a.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "imagenet-a", arcname="imagenet-a")
    ood = {"inet_a": {"format": "imagenet_a", "images": str(tmp_path / "data" / "a"),
                      "archives": [{"url": (tmp_path / "imagenet-a.tar.gz").as_uri(),
                                    "sha256": file_digest(tmp_path / "imagenet-a.tar.gz")}]},
           "inet_c": {"format": "imagenet_c", "images": "c", "archives": [{"url": "https://x/noise.tar", "md5": "0" * 32}]},
           "inet_r": {"format": "imagenet_r", "images": "r"}}
    dataset = {"name": "inet", "kind": "imagefolder", "imagefolder": {"num_classes": 1000, "splits": {}, "ood": ood}}
    downloads = dataset_kind("imagefolder").folder_downloads(dataset)
    assert sorted(downloads) == ["inet_a", "inet_c"]
    assert downloads["inet_a"]["strip_components"] == 1 and downloads["inet_c"]["strip_components"] == 0
    archive = download(downloads["inet_a"]["archives"][0]["url"], tmp_path / "dl" / "imagenet-a.tar.gz",
                       sha256=downloads["inet_a"]["archives"][0]["sha256"])
    assert extract_archives([archive], ood["inet_a"]["images"], strip_components=1) == 2
    split = next(iter(ood_format("imagenet_a").parts(ood["inet_a"], 8)))
    assert split.labels.tolist() == A_CLASSES[:2]
    ood["inet_r"]["archives"] = [{"url": "https://x/imagenet-r.tar"}]
    with pytest.raises(ConfigError, match="ood.inet_r.archives: https://x/imagenet-r.tar has no checksum"):
        check_download_checksums({"dataset": dataset})
    with tarfile.open(tmp_path / "evil.tar", "w") as tar:
        tar.add(tmp_path / "imagenet-a.tar.gz", arcname="../evil")
    with pytest.raises(ValueError, match="points outside the folder"):
        extract_archives([tmp_path / "evil.tar"], tmp_path / "evil")
    assert not (tmp_path / "evil").exists() and not list(tmp_path.glob("evil.partial*"))
