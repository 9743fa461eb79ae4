"""The dataset-kind registry: every kind's split names, classes, sizes and archive, and prepare_dataset."""
import numpy as np
import pytest
import yaml
from PIL import Image

from robustxai.config import SCHEMA_PATH, ConfigError, all_split_names, num_classes, split_names
from robustxai.data.cifar import CIFAR10_MD5, CIFAR10_URL, read_cifar10
from robustxai.data.imagenet_ood.lists import imagenet_wnids
from robustxai.data.kinds import DATASET_KINDS, DatasetKind, dataset_kind, missing_inputs_message, missing_local_inputs
from robustxai.data.splits import load_split
from robustxai.pipeline.datasets import prepare_dataset
from test_loaders import TINY_PER_CLASS, TINY_VAL_PER_CLASS, TINY_WNIDS, make_cifar_archive, make_tinyimagenet_zip

BUILTIN_SIZES = {"train": 50, "val": 10, "test": 20, "ood_background": 20, "ood_corruption": 20}
DATASETS = {
    "builtin": {"name": "b", "kind": "builtin", "image_size": 32, "builtin": {"sizes": BUILTIN_SIZES}},
    "cifar10": {"name": "c", "kind": "cifar10", "image_size": 32, "cifar10": {"val_size": 3000}},
    "imagefolder": {"name": "i", "kind": "imagefolder", "image_size": 64,
                    "imagefolder": {"num_classes": 7, "splits": {"val": {"images": "v"}, "test": {"images": "t"}}}},
    "tinyimagenet": {"name": "t", "kind": "tinyimagenet", "image_size": 64},
}


def test_registry_lists_every_kind_and_the_schema_allows_exactly_them():
    assert sorted(DATASET_KINDS) == ["builtin", "cifar10", "imagefolder", "tinyimagenet"]
    for name in DATASET_KINDS:
        kind = dataset_kind(name)
        assert isinstance(kind, DatasetKind) and kind.name == name
    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["dataset"]["properties"]
    assert sorted(schema["kind"]["enum"]) == sorted(DATASET_KINDS)
    assert {"builtin", "cifar10", "imagefolder", "tinyimagenet"} <= set(schema)  # each kind's settings block


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset kind 'mnist', expected one of \['builtin', 'cifar10', "
                                         r"'imagefolder', 'tinyimagenet'\]"):
        dataset_kind("mnist")
    with pytest.raises(ValueError, match="unknown dataset kind 'mnist'"):
        split_names({"name": "m", "kind": "mnist"})


@pytest.mark.parametrize("kind, fit, ood, classes", [
    ("builtin", ["train", "val"], ["ood_background", "ood_corruption"], 10),
    ("cifar10", ["train", "val"], ["ood_corruption"], 10),
    ("imagefolder", ["val"], ["ood_corruption"], 7),
    ("tinyimagenet", ["train", "val"], ["ood_corruption"], 200),
])
def test_config_split_names_and_classes_come_from_the_kind(kind, fit, ood, classes):
    dataset = DATASETS[kind]
    assert split_names(dataset) == {"fit": fit, "test": ["test"], "ood": ood}
    assert all_split_names(dataset) == fit + ["test"] + ood
    assert num_classes(dataset) == classes


@pytest.mark.parametrize("kind, sizes", [
    ("builtin", BUILTIN_SIZES),
    ("cifar10", {"train": 47000, "val": 3000, "test": 10000, "ood_corruption": 10000}),
    ("imagefolder", {}),
    ("tinyimagenet", {"train": 95000, "val": 5000, "test": 10000, "ood_corruption": 10000}),
])
def test_split_sizes_are_known_before_the_data_where_the_kind_fixes_them(kind, sizes):
    assert dataset_kind(kind).split_sizes(DATASETS[kind]) == sizes


def test_a_val_size_that_leaves_no_training_images_is_a_config_error():
    with pytest.raises(ConfigError, match="tinyimagenet.val_size=100000 leaves none of the 100000"):
        dataset_kind("tinyimagenet").split_sizes({**DATASETS["tinyimagenet"], "tinyimagenet": {"val_size": 100000}})


def test_archives_official_by_default_overridable_and_none_without_a_download():
    assert dataset_kind("cifar10").archive(DATASETS["cifar10"]) == {"url": CIFAR10_URL, "md5": CIFAR10_MD5,
                                                                    "sha256": None}
    assert dataset_kind("tinyimagenet").archive(DATASETS["tinyimagenet"]) == {
        "url": "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "md5": "90528d7ca1a48142e341f4ef8d21d0de",
        "sha256": None}
    mirror = {**DATASETS["tinyimagenet"], "tinyimagenet": {"url": "https://mirror/t.zip", "sha256": "ab" * 32}}
    assert dataset_kind("tinyimagenet").archive(mirror) == {"url": "https://mirror/t.zip", "md5": None,
                                                            "sha256": "ab" * 32}  # the official md5 is not its
    extracted = {**DATASETS["tinyimagenet"], "tinyimagenet": {"root": "/data/tiny-imagenet-200"}}
    assert dataset_kind("tinyimagenet").archive(extracted) is None
    assert dataset_kind("builtin").archive(DATASETS["builtin"]) is None
    assert dataset_kind("imagefolder").archive(DATASETS["imagefolder"]) is None


def test_archive_kinds_need_the_archive():
    with pytest.raises(ConfigError, match="'cifar10' needs the downloaded archive"):
        dataset_kind("cifar10").build_splits(DATASETS["cifar10"], None)


def test_prepare_dataset_writes_every_tinyimagenet_split(tmp_path):
    make_tinyimagenet_zip(tmp_path / "tiny.zip")
    dataset = {"name": "t", "kind": "tinyimagenet", "image_size": 64, "seed": 0, "tinyimagenet": {"val_size": 4}}
    outputs = {name: str(tmp_path / "data" / f"{name}.h5") for name in all_split_names(dataset)}
    sizes = prepare_dataset(dataset, outputs, archive=str(tmp_path / "tiny.zip"))
    train_size, test_size = 3 * TINY_PER_CLASS, 3 * TINY_VAL_PER_CLASS
    assert sizes == {"train": train_size - 4, "val": 4, "test": test_size, "ood_corruption": test_size}
    splits = {name: load_split(path) for name, path in outputs.items()}
    assert {name: len(split) for name, split in splits.items()} == sizes
    assert all(split.class_names == TINY_WNIDS and split.masks is not None for split in splits.values())
    corrupted, test = splits["ood_corruption"], splits["test"]
    assert np.array_equal(corrupted.labels, test.labels) and np.array_equal(corrupted.boxes, test.boxes)
    assert set(corrupted.extras) == {"corruption", "severity"}
    assert not np.array_equal(corrupted.images, test.images)


def test_prepare_dataset_carves_cifar10_val_by_the_seeded_permutation(tmp_path):
    make_cifar_archive(tmp_path / "c.tar.gz", per_batch=6)
    dataset = {"name": "c", "kind": "cifar10", "image_size": 32, "seed": 3, "cifar10": {"val_size": 7}}
    outputs = {name: str(tmp_path / f"{name}.h5") for name in all_split_names(dataset)}
    assert prepare_dataset(dataset, outputs, archive=str(tmp_path / "c.tar.gz")) == {
        "train": 23, "val": 7, "test": 6, "ood_corruption": 6}
    official = read_cifar10(tmp_path / "c.tar.gz")["train"]
    order = np.random.default_rng(3).permutation(30)  # the carve of earlier releases: prepared data stay valid
    assert np.array_equal(load_split(outputs["val"]).images, official.images[order[:7]])
    assert np.array_equal(load_split(outputs["train"]).labels, official.labels[order[7:]])
    with pytest.raises(ConfigError, match="set dataset.image_size to 32"):
        prepare_dataset({**dataset, "image_size": 64}, outputs, archive=str(tmp_path / "c.tar.gz"))


def class_folder_tree(root, names, size=8):
    """An ImageFolder tree with one ``size`` px image per class folder ``names``; returns ``root``."""
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (size, size), (20 * k, 0, 0)).save(root / name / "a.png")
    return root


def folder_dataset(images, num_classes, **settings):
    return {"name": "f", "kind": "imagefolder", "image_size": 8,
            "imagefolder": {"num_classes": num_classes, "splits": {"test": {"images": str(images)}}, **settings}}


def test_the_shipped_imagenet_order_is_the_standard_1000_wnids():
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and wnids[0] == "n01440764" and wnids[1] == "n01443537" and wnids[-1] == "n15075141"


def test_a_subset_of_imagenet_wnid_folders_keeps_the_true_imagenet_indices_without_a_class_file(tmp_path):
    images = class_folder_tree(tmp_path / "val", ["n01440764", "n01443537", "n15075141"])
    for dataset in (folder_dataset(images, 1000), folder_dataset(images, 1000, class_names="imagenet")):
        test = dataset_kind("imagefolder").build_splits(dataset, None)["test"]
        assert test.labels.tolist() == [0, 1, 999] and test.class_names == list(imagenet_wnids())
    # class_names: folders restores 0..K-1 for a model trained on these classes
    test = dataset_kind("imagefolder").build_splits(folder_dataset(images, 3, class_names="folders"), None)["test"]
    assert test.labels.tolist() == [0, 1, 2] and test.class_names == ["n01440764", "n01443537", "n15075141"]


def test_folders_that_are_not_all_wnids_are_labelled_in_sorted_order(tmp_path):
    images = class_folder_tree(tmp_path / "val", ["n01440764", "cat", "dog"])
    test = dataset_kind("imagefolder").build_splits(folder_dataset(images, 3), None)["test"]
    assert test.labels.tolist() == [0, 1, 2] and test.class_names == ["cat", "dog", "n01440764"]


def test_a_class_count_mismatch_says_exactly_what_to_set(tmp_path):
    wnids = class_folder_tree(tmp_path / "wnids", ["n01440764", "n01443537", "n15075141"])
    with pytest.raises(ConfigError, match=r"labelled in the 1000-class ImageNet order \(class_names: imagenet, the "
                                          r"default when every folder is a wnid\), but dataset.imagefolder.num_classes "
                                          r"is 3: set num_classes: 1000 .*, or class_names: folders to label its 3 "
                                          r"folders 0..2 in sorted order"):
        dataset_kind("imagefolder").build_splits(folder_dataset(wnids, 3), None)
    with pytest.raises(ConfigError, match=r"has 3 class folders, labelled 0..2 in sorted order \(class_names: "
                                          r"folders\), but dataset.imagefolder.num_classes is 1000: set num_classes: "
                                          r"3 .*or class_names_file: .*\(for ImageNet-1k wnid folders: class_names: "
                                          r"imagenet\)"):
        dataset_kind("imagefolder").build_splits(folder_dataset(wnids, 1000, class_names="folders"), None)
    classes = tmp_path / "classes.txt"
    classes.write_text("n01440764\nn01443537\nn15075141\nn99999999\n")
    with pytest.raises(ConfigError, match=rf"class_names_file: {classes} lists 4 classes, but dataset.imagefolder."
                                          rf"num_classes is 1000: set num_classes: 4, or list all 1000"):
        dataset_kind("imagefolder").build_splits(folder_dataset(wnids, 1000, class_names_file=str(classes)), None)
    odd = class_folder_tree(tmp_path / "odd", ["n01440764", "n00000001"])
    with pytest.raises(ConfigError, match=r"its folders \['n00000001'\] are not ImageNet-1k wnids: set "
                                          r"dataset.imagefolder.class_names: folders"):
        dataset_kind("imagefolder").build_splits(folder_dataset(odd, 1000), None)


def test_the_class_names_file_is_an_input_of_data_preparation(tmp_path):
    kind = dataset_kind("imagefolder")
    assert kind.input_files(folder_dataset(tmp_path, 3, class_names_file="classes.txt")) == ["classes.txt"]
    assert kind.input_files(folder_dataset(tmp_path, 3)) == []
    assert dataset_kind("builtin").input_files(DATASETS["builtin"]) == []
    with pytest.raises(ConfigError, match=r"sets both class_names \(imagenet\) and class_names_file \(c.txt\)"):
        kind.input_files(folder_dataset(tmp_path, 3, class_names="imagenet", class_names_file="c.txt"))


def test_hidden_folders_are_not_classes_and_a_repeated_class_name_is_refused(tmp_path, caplog):
    import logging

    images = class_folder_tree(tmp_path / "val", ["n01440764", "n01443537", "n15075141"])
    (images / ".ipynb_checkpoints").mkdir()
    with caplog.at_level(logging.WARNING):
        test = dataset_kind("imagefolder").build_splits(folder_dataset(images, 3, class_names="folders"), None)["test"]
    assert test.labels.tolist() == [0, 1, 2] and ".ipynb_checkpoints" not in test.class_names
    assert "hidden folders ['.ipynb_checkpoints'] are not classes; left out" in caplog.text
    classes = tmp_path / "classes.txt"
    classes.write_text("n01440764\nn01443537\nn01443537\nn15075141\n")
    with pytest.raises(ConfigError, match=rf"^dataset.imagefolder.class_names_file: {classes} lists \['n01443537'\] "
                                          r"more than once"):
        dataset_kind("imagefolder").build_splits(folder_dataset(images, 3, class_names_file=str(classes)), None)


def test_local_inputs_name_their_config_keys_and_only_missing_ones_are_reported(tmp_path):
    val, boxes, sketches = tmp_path / "val", tmp_path / "val_boxes", tmp_path / "sketch"
    dataset = {"name": "x", "kind": "imagefolder", "image_size": 32, "imagefolder": {
        "num_classes": 2, "splits": {"test": {"images": str(val), "annotations": str(boxes)}},
        "ood": {"imagenet_sketch": {"format": "imagenet_sketch", "images": str(sketches)},
                "imagenet_a": {"format": "imagenet_a", "images": str(tmp_path / "a"), "archives": [{"url": "http://a"}]}}}}
    kind = dataset_kind("imagefolder")
    assert kind.local_inputs(dataset) == {"dataset.imagefolder.splits.test.images": str(val),
                                          "dataset.imagefolder.splits.test.annotations": str(boxes),
                                          "dataset.imagefolder.ood.imagenet_sketch.images": str(sketches)}  # a: downloaded
    val.mkdir()
    prepared = [str(tmp_path / "test.h5"), str(tmp_path / "imagenet_sketch.h5")]
    missing = missing_local_inputs(kind, dataset, prepared)
    assert missing == [("dataset.imagefolder.splits.test.annotations", str(boxes)),
                       ("dataset.imagefolder.ood.imagenet_sketch.images", str(sketches))]
    assert f"dataset.imagefolder.splits.test.annotations: no {boxes}; " in missing_inputs_message(missing)
    (tmp_path / "test.h5").touch()
    assert len(missing_local_inputs(kind, dataset, prepared)) == 2  # one split prepared is not all of them
    (tmp_path / "imagenet_sketch.h5").touch()
    assert missing_local_inputs(kind, dataset, prepared) == []  # every split prepared: the sources are not read
    tiny = {"name": "t", "kind": "tinyimagenet", "image_size": 64, "tinyimagenet": {"root": str(tmp_path / "tiny")}}
    assert dataset_kind("tinyimagenet").local_inputs(tiny) == {"dataset.tinyimagenet.root": str(tmp_path / "tiny")}
    assert dataset_kind("tinyimagenet").local_inputs({**tiny, "tinyimagenet": {}}) == {}  # downloaded
    assert dataset_kind("builtin").local_inputs({"name": "b", "kind": "builtin"}) == {}
