"""The split file format: chunked HDF5 read image by image, streamed writes, checksums per chunk."""
import h5py
import numpy as np
import pytest

from robustxai.data.corruptions import CORRUPTIONS, SEVERITIES
from robustxai.data.splits import (ImageSplit, SplitWriter, is_split_file, iter_split, load_split, save_split,
                                   split_size)
from robustxai.config import ConfigError
from robustxai.integrity import CorruptFileError
from robustxai.pipeline.datasets import corruption_parts
from robustxai.pipeline.verify import CORRUPT, OK, check_file


def make_split(n=12, size=8, seed=0, start=0):
    rng = np.random.default_rng(seed)
    return ImageSplit(images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                      labels=(np.arange(start, start + n) % 3) * 2,
                      boxes=np.tile(np.array([1, 2, 5, 6], np.int32), (n, 1)),
                      class_names=["a", "b", "c", "d", "e", "f"], masks=rng.random((n, size, size)) > 0.5,
                      extras={"corruption": np.array(["noise", "blur"] * n)[:n], "severity": np.arange(n)},
                      label_subset=np.array([0, 2, 4]))


def assert_same(a: ImageSplit, b: ImageSplit):
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.masks, b.masks)
    assert a.class_names == b.class_names and np.array_equal(a.label_subset, b.label_subset)
    assert a.extras.keys() == b.extras.keys() and all(np.array_equal(a.extras[k], b.extras[k]) for k in a.extras)


def test_round_trip_and_reading_only_some_images(tmp_path):
    split = make_split()
    save_split(split, tmp_path / "test.h5")
    back = load_split(tmp_path / "test.h5")
    assert_same(back, split)
    assert back.extras["corruption"].dtype.kind == "U" and back.labels.dtype == np.int64
    index = np.array([9, 2, 3, 3, 11, 0])  # any order, repeats, runs and gaps
    assert_same(load_split(tmp_path / "test.h5", index), split.subset(index))
    assert len(load_split(tmp_path / "test.h5", np.array([], np.int64))) == 0
    assert split_size(tmp_path / "test.h5") == 12 and is_split_file(tmp_path / "test.h5")
    with pytest.raises(IndexError, match="outside 0..11"):
        load_split(tmp_path / "test.h5", np.array([3, 12]))


def test_images_are_stored_one_per_chunk_so_a_shard_reads_only_its_own(tmp_path):
    save_split(make_split(size=16), tmp_path / "test.h5")
    with h5py.File(tmp_path / "test.h5") as f:
        assert f["images"].chunks == (1, 16, 16, 3) and f["masks"].chunks == (1, 16, 16)
        assert f["images"].fletcher32 and f["labels"].fletcher32


def test_streamed_parts_equal_one_write(tmp_path):
    whole = make_split(n=12)
    with SplitWriter(tmp_path / "parts.h5") as out:
        for start in (0, 5, 9):
            out.append(whole.subset(np.arange(start, {0: 5, 5: 9, 9: 12}[start])))
    assert out.count == 12
    assert_same(load_split(tmp_path / "parts.h5"), whole)
    parts = list(iter_split(tmp_path / "parts.h5", 5))
    assert [p.tolist() for p, _ in parts] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert_same(parts[2][1], whole.subset(np.array([10, 11])))


def test_a_part_unlike_the_first_is_refused(tmp_path):
    with pytest.raises(ValueError, match="differs from the first"):
        with SplitWriter(tmp_path / "x.h5") as out:
            out.append(make_split(size=8))
            out.append(make_split(size=16))
    assert not (tmp_path / "x.h5").exists()


def test_labels_outside_the_label_subset_are_refused():
    split = make_split()
    with pytest.raises(ValueError, match="labels outside label_subset"):
        ImageSplit(split.images, split.labels + 1, split.boxes, split.class_names, label_subset=np.array([0, 2, 4]))


def test_a_damaged_chunk_names_the_file_and_verify_finds_it(tmp_path):
    path = tmp_path / "data" / "toy" / "test.h5"
    path.parent.mkdir(parents=True)
    save_split(make_split(), path)
    assert check_file(path, tmp_path).status == OK
    with h5py.File(path) as f:
        offset = f["images"].id.get_chunk_info(4).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 7] ^= 0xFF
    path.write_bytes(bytes(data))
    assert len(load_split(path, np.array([3, 5]))) == 2  # other images still read
    with pytest.raises(CorruptFileError, match="test.h5"):
        load_split(path, np.array([4]))
    assert check_file(path, tmp_path).status == CORRUPT


def test_the_corruption_split_streamed_in_parts_cycles_pairs_over_the_whole_split(tmp_path, monkeypatch):
    import robustxai.pipeline.datasets as datasets

    monkeypatch.setattr(datasets, "CORRUPTION_PART_IMAGES", 4)
    test = make_split(n=11)
    save_split(test, tmp_path / "test.h5")
    parts = list(corruption_parts(str(tmp_path / "test.h5"), seed=3))
    assert [len(p) for p in parts] == [4, 4, 3]
    pairs = [(name, severity) for name in CORRUPTIONS for severity in SEVERITIES]
    got = [(str(c), int(s)) for p in parts for c, s in zip(p.extras["corruption"], p.extras["severity"])]
    assert got == [pairs[i % len(pairs)] for i in range(11)]
    assert all(np.array_equal(p.labels, test.labels[4 * k:4 * k + 4]) for k, p in enumerate(parts))
    assert not np.array_equal(parts[0].images, test.images[:4])  # corrupted
    again = list(corruption_parts(str(tmp_path / "test.h5"), seed=3))
    assert all(np.array_equal(a.images, b.images) for a, b in zip(parts, again))


def test_an_imagefolder_split_is_prepared_part_by_part_as_read_whole(tmp_path, monkeypatch):
    from PIL import Image

    import robustxai.data.kinds.imagefolder as kind_module
    from robustxai.data.imagefolder import iter_imagefolder, load_imagefolder
    from robustxai.pipeline.datasets import prepare_dataset

    rng = np.random.default_rng(1)
    for k in range(5):
        folder = tmp_path / "val" / ("n01" if k < 3 else "n02")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    whole = load_imagefolder(tmp_path / "val", None, 8)
    parts = list(iter_imagefolder(tmp_path / "val", None, 8, part_images=2))
    assert [len(p) for p in parts] == [2, 2, 1]
    assert np.array_equal(np.concatenate([p.images for p in parts]), whole.images)

    monkeypatch.setattr(kind_module, "iter_imagefolder",
                        lambda *args, **kwargs: iter_imagefolder(*args, part_images=2, **kwargs))
    dataset = {"name": "mini", "kind": "imagefolder", "image_size": 8, "seed": 0,
               "imagefolder": {"num_classes": 2, "splits": {"test": {"images": str(tmp_path / "val")}}}}
    outputs = {name: str(tmp_path / "data" / f"{name}.h5") for name in ("test", "ood_corruption")}
    assert prepare_dataset(dataset, outputs) == {"test": 5, "ood_corruption": 5}
    test = load_split(outputs["test"])
    assert np.array_equal(test.images, whole.images) and test.labels.tolist() == [0, 0, 0, 1, 1]
    assert (test.boxes == -1).all() and test.masks is None
    dataset["imagefolder"]["num_classes"] = 3
    with pytest.raises(ConfigError, match="has 2 class folders, .*num_classes is 3: set num_classes: 2"):
        prepare_dataset(dataset, {name: str(tmp_path / "again" / f"{name}.h5") for name in outputs})
    assert not (tmp_path / "again").exists() or not any((tmp_path / "again").iterdir())
