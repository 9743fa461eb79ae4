"""The dataset-kind registry: every kind's split names, classes, sizes and archive, and prepare_dataset."""
import numpy as np
import pytest
import yaml

from robustxai.config import SCHEMA_PATH, ConfigError, all_split_names, num_classes, split_names
from robustxai.data.cifar import CIFAR10_MD5, CIFAR10_URL, read_cifar10
from robustxai.data.kinds import DATASET_KINDS, DatasetKind, dataset_kind
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
