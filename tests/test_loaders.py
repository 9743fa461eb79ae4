import io
import logging
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from robustxai.config import ConfigError
from robustxai.data.cifar import TEST_BATCHES, TRAIN_BATCHES, read_cifar10
from robustxai.data.download import download, file_digest
from robustxai.data.imagefolder import load_imagefolder, read_voc_boxes
from robustxai.data.kinds import dataset_kind
from robustxai.data.splits import MISSING_BOX
from robustxai.data.tinyimagenet import exclusive_box, read_tinyimagenet

VOC_XML = """<annotation><filename>{stem}.JPEG</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
VOC_OBJECT = ("<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
              "<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")


def write_voc(path, stem, w, h, objects):
    body = "".join(VOC_OBJECT.format(name=n, x0=a, y0=b, x1=c, y1=d) for n, (a, b, c, d) in objects)
    path.write_text(VOC_XML.format(stem=stem, w=w, h=h, objects=body))


def test_voc_boxes_become_zero_based_with_exclusive_ends(tmp_path):
    write_voc(tmp_path / "a.xml", "a", 100, 80, [("n01", (1, 1, 10, 20)), ("n02", (50, 40, 100, 80))])
    assert read_voc_boxes(tmp_path / "a.xml") == [("n01", (0, 0, 10, 20)), ("n02", (49, 39, 100, 80))]


def test_imagefolder_with_voc_boxes_resizes_and_crops_boxes(tmp_path):
    images, annotations = tmp_path / "val", tmp_path / "boxes"
    for wnid in ("n01", "n02"):
        (images / wnid).mkdir(parents=True)
    (annotations / "n02").mkdir(parents=True)
    # 80x40 image, image_size 20: scale 0.5 -> 40x20, centre crop keeps x in [10, 30)
    Image.new("RGB", (80, 40), (255, 0, 0)).save(images / "n01" / "img_a.JPEG")
    write_voc(annotations / "img_a.xml", "img_a", 80, 40, [("n01", (21, 1, 60, 20)), ("n99", (1, 1, 80, 40))])
    Image.new("RGB", (30, 30), (0, 255, 0)).save(images / "n02" / "img_b.png")
    write_voc(annotations / "n02" / "img_b.xml", "img_b", 30, 30, [("n02", (16, 16, 30, 30))])
    split = load_imagefolder(images, annotations, image_size=20)
    assert split.class_names == ["n01", "n02"] and split.labels.tolist() == [0, 1]
    assert split.images.shape == (2, 20, 20, 3)
    assert np.abs(split.images[0, 0, 0].astype(int) - [255, 0, 0]).max() <= 3  # JPEG rounding
    # img_a: box (20, 0, 60, 20) * 0.5 = (10, 0, 30, 10), minus crop offset 10 in x -> (0, 0, 20, 10);
    # the n99 object (another class) is ignored.
    assert split.boxes[0].tolist() == [0, 0, 20, 10]
    assert split.masks[0].sum() == 20 * 10
    # img_b: 30 -> 20, scale 2/3: (15, 15, 30, 30) -> (10, 10, 20, 20)
    assert split.boxes[1].tolist() == [10, 10, 20, 20]


def test_voc_objects_not_named_by_the_class_folder_are_reported_by_file_and_kept_with_any_object(tmp_path, caplog):
    """Hand-labelled VOC files name objects in words ("tabby cat"): class_object (the default) leaves
    those boxes out and names the files (10, then a count), any_object keeps them."""
    images, annotations = tmp_path / "val", tmp_path / "boxes"
    (images / "n02123045").mkdir(parents=True)
    annotations.mkdir()
    for i in range(12):  # 20x20 images, image_size 20: boxes stay as written (0-based, exclusive ends)
        Image.new("RGB", (20, 20), (10 * i, 0, 0)).save(images / "n02123045" / f"img_{i:02d}.png")
        write_voc(annotations / f"img_{i:02d}.xml", f"img_{i:02d}", 20, 20, [("tabby cat", (3, 5, 12, 16))])
    with caplog.at_level(logging.WARNING, logger="robustxai.data.imagefolder"):
        split = load_imagefolder(images, annotations, image_size=20)
    assert (split.boxes == np.array(MISSING_BOX)).all()  # boxless, as before, but now said
    report = next(r.getMessage() for r in caplog.records if "VOC file(s)" in r.getMessage())
    assert f"{annotations}: 12 VOC file(s) have objects whose <name> is not the image's class folder ('tabby cat')" \
        in report
    assert ", ".join(f"img_{i:02d}.xml" for i in range(10)) + " and 2 more" in report
    assert "img_10.xml" not in report and "boxes: any_object" in report

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="robustxai.data.imagefolder"):
        kept = load_imagefolder(images, annotations, image_size=20, boxes="any_object")
    assert kept.boxes.tolist() == [[2, 4, 12, 16]] * 12 and kept.masks.sum((1, 2)).tolist() == [10 * 12] * 12
    assert not caplog.records
    with pytest.raises(ValueError, match=r"boxes='every': expected one of \['class_object', 'any_object'\]"):
        load_imagefolder(images, annotations, image_size=20, boxes="every")


def test_imagefolder_rejects_folders_outside_class_names(tmp_path):
    (tmp_path / "n03").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "n03" / "x.png")
    with pytest.raises(ValueError, match="n03"):
        load_imagefolder(tmp_path, None, 8, class_names=["n01"])


def test_imagefolder_without_annotation_file_is_an_error(tmp_path):
    (tmp_path / "imgs" / "n01").mkdir(parents=True)
    (tmp_path / "ann").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "n01" / "x.png")
    with pytest.raises(FileNotFoundError, match="no VOC annotation"):
        load_imagefolder(tmp_path / "imgs", tmp_path / "ann", 8)


def make_cifar_archive(path, per_batch=4):
    """A stand-in cifar-10-python.tar.gz: the official layout, random pixels, labels i % 10."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as archive:
        def add(name, obj):
            data = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        add("batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
        for k, name in enumerate(TRAIN_BATCHES + TEST_BATCHES):
            add(name, {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                       "labels": [(k + i) % 10 for i in range(per_batch)]})


def test_cifar10_archive_layout_is_read(tmp_path):
    make_cifar_archive(tmp_path / "c.tar.gz")
    splits = read_cifar10(tmp_path / "c.tar.gz")
    assert len(splits["train"]) == 20 and len(splits["test"]) == 4
    assert splits["train"].images.shape == (20, 32, 32, 3)
    assert splits["train"].class_names[3] == "class3"
    assert splits["test"].labels.tolist() == [5, 6, 7, 8]
    # pixel layout: CIFAR rows are [R(1024) G(1024) B(1024)] of a 32x32 image
    with tarfile.open(tmp_path / "c.tar.gz") as archive:
        raw = pickle.load(archive.extractfile("cifar-10-batches-py/test_batch"))
    assert splits["test"].images[0, 0, 1, 1] == raw["data"][0][1024 + 1]


def test_download_from_file_url_verifies_checksum(tmp_path):
    source = tmp_path / "payload.bin"
    source.write_bytes(b"robustxai" * 1000)
    digest = file_digest(source)
    out = download(source.as_uri(), tmp_path / "out" / "p.bin", sha256=digest)
    assert out.read_bytes() == source.read_bytes()
    with pytest.raises(ValueError, match="sha256"):
        download(source.as_uri(), tmp_path / "bad.bin", sha256="0" * 64)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()


# Deliberately not sorted: labels must follow wnids.txt, not the alphabet.
TINY_WNIDS = ["n02124075", "n01443537", "n09246464"]
TINY_PER_CLASS, TINY_VAL_PER_CLASS = 6, 3


def tinyimagenet_files(wnids, per_class, val_per_class, seed):
    """Files of a stand-in tiny-imagenet-200 folder (relative path -> bytes) in the official layout, and
    what reading it must give: {"train" | "val": (labels, inclusive boxes (N, 4))} in annotation order,
    and "grey": {(split, index): the (64, 64) pixels of a greyscale JPEG}.

    Images are random-pixel JPEGs, so each decodes to a unique array; the last train image of each class
    and val_0 are greyscale. Train box 0 of the first class spans the whole image; box 1 is (10, 5, 20, 30).
    """
    rng = np.random.default_rng(seed)
    grey = {}

    def jpeg(key=None):
        if key is None:
            image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        else:
            image = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        if key is not None:
            grey[key] = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        return buffer.getvalue()

    def box():
        x0, y0 = rng.integers(0, 60, 2)
        return [int(x0), int(y0), int(rng.integers(x0, 64)), int(rng.integers(y0, 64))]

    files = {"wnids.txt": "".join(f"{w}\n" for w in wnids).encode(), "test/images/test_0.JPEG": jpeg()}
    expected = {"train": ([], []), "val": ([], [])}
    for label, wnid in enumerate(wnids):
        lines = []
        for k in range(per_class):
            corners = [0, 0, 63, 63] if (label, k) == (0, 0) else [10, 5, 20, 30] if (label, k) == (0, 1) else box()
            last = k == per_class - 1
            files[f"train/{wnid}/images/{wnid}_{k}.JPEG"] = jpeg(("train", label * per_class + k) if last else None)
            lines.append("\t".join(map(str, [f"{wnid}_{k}.JPEG", *corners])))
            expected["train"][0].append(label)
            expected["train"][1].append(corners)
        files[f"train/{wnid}/{wnid}_boxes.txt"] = ("\n".join(lines) + "\n").encode()
    lines = []
    for k in range(len(wnids) * val_per_class):
        label, corners = (k * 2 + 1) % len(wnids), box()
        files[f"val/images/val_{k}.JPEG"] = jpeg(("val", 0) if k == 0 else None)
        lines.append("\t".join(map(str, [f"val_{k}.JPEG", wnids[label], *corners])))
        expected["val"][0].append(label)
        expected["val"][1].append(corners)
    files["val/val_annotations.txt"] = ("\n".join(lines) + "\n").encode()
    return files, {**{name: (np.array(labels), np.array(boxes)) for name, (labels, boxes) in expected.items()},
                   "grey": grey}


def make_tinyimagenet_zip(path, wnids=TINY_WNIDS, per_class=TINY_PER_CLASS, val_per_class=TINY_VAL_PER_CLASS,
                          seed=0):
    """A stand-in tiny-imagenet-200.zip (top folder tiny-imagenet-200/); returns the expected annotations."""
    files, expected = tinyimagenet_files(wnids, per_class, val_per_class, seed)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"tiny-imagenet-200/{name}", data)
    return expected


def make_tinyimagenet_tree(root, wnids=TINY_WNIDS, per_class=TINY_PER_CLASS, val_per_class=TINY_VAL_PER_CLASS,
                           seed=0):
    """The same stand-in extracted: ``root`` is the tiny-imagenet-200 folder; returns the expected annotations."""
    files, expected = tinyimagenet_files(wnids, per_class, val_per_class, seed)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return expected


@pytest.fixture(params=["zip", "root"])
def tiny_source(request, tmp_path):
    """(path of the stand-in zip or extracted folder, expected annotations)."""
    if request.param == "zip":
        return tmp_path / "tiny-imagenet-200.zip", make_tinyimagenet_zip(tmp_path / "tiny-imagenet-200.zip")
    return tmp_path / "tiny-imagenet-200", make_tinyimagenet_tree(tmp_path / "tiny-imagenet-200")


def test_tinyimagenet_inclusive_corners_become_exclusive_ends_clipped_to_the_image():
    assert exclusive_box(["10", "5", "20", "30"]) == (10, 5, 21, 31)
    assert exclusive_box(["0", "0", "63", "63"]) == (0, 0, 64, 64)
    assert exclusive_box(["-2", "3", "70", "64"]) == (0, 3, 64, 64)
    assert exclusive_box(["9", "3", "8", "5"]) == (-1, -1, -1, -1)  # empty box


def test_tinyimagenet_labels_boxes_and_masks_read_back(tiny_source):
    source, expected = tiny_source
    official = read_tinyimagenet(source)
    assert set(official) == {"train", "val"}
    for name, count in (("train", 3 * TINY_PER_CLASS), ("val", 3 * TINY_VAL_PER_CLASS)):
        split, (labels, inclusive) = official[name], expected[name]
        assert split.images.shape == (count, 64, 64, 3) and split.images.dtype == np.uint8
        assert split.class_names == TINY_WNIDS  # wnids.txt order
        assert split.labels.tolist() == labels.tolist()
        assert split.boxes.tolist() == np.column_stack([inclusive[:, :2], inclusive[:, 2:] + 1]).tolist()
        for (x0, y0, x1, y1), mask in zip(split.boxes, split.masks):
            assert mask[y0:y1, x0:x1].all() and mask.sum() == (x1 - x0) * (y1 - y0)
    assert official["train"].labels.tolist()[:TINY_PER_CLASS + 1] == [0] * TINY_PER_CLASS + [1]
    assert official["train"].boxes[:2].tolist() == [[0, 0, 64, 64], [10, 5, 21, 31]]
    assert official["val"].labels[:3].tolist() == [1, 0, 2]  # val labels come from val_annotations.txt


def test_tinyimagenet_greyscale_jpegs_become_rgb(tiny_source):
    source, expected = tiny_source
    official = read_tinyimagenet(source)
    assert len(expected["grey"]) == 4
    for (name, index), pixels in expected["grey"].items():
        assert pixels.shape == (64, 64) and pixels.std() > 50
        assert np.array_equal(official[name].images[index], np.repeat(pixels[..., None], 3, axis=2))
    colour = official["train"].images[0].astype(int)
    assert np.abs(colour[..., 0] - colour[..., 1]).mean() > 20  # the other images keep their colours


def test_tinyimagenet_kind_carves_val_from_train_and_tests_on_official_val(tiny_source):
    source, _ = tiny_source
    official = read_tinyimagenet(source)
    dataset = {"name": "tiny", "kind": "tinyimagenet", "image_size": 64, "seed": 1, "tinyimagenet": {"val_size": 5}}
    if source.is_dir():
        dataset["tinyimagenet"]["root"], archive = str(source), None
    else:
        archive = str(source)
    splits = dataset_kind("tinyimagenet").build_splits(dataset, archive)
    assert set(splits) == {"train", "val", "test"}
    assert (len(splits["train"]), len(splits["val"])) == (3 * TINY_PER_CLASS - 5, 5)
    position = {image.tobytes(): i for i, image in enumerate(official["train"].images)}
    carved = {name: [position[image.tobytes()] for image in splits[name].images] for name in ("train", "val")}
    assert sorted(carved["train"] + carved["val"]) == list(range(3 * TINY_PER_CLASS))  # disjoint, complete
    for name, index in carved.items():  # labels, boxes and masks travel with their images
        assert splits[name].labels.tolist() == official["train"].labels[index].tolist()
        assert np.array_equal(splits[name].boxes, official["train"].boxes[index])
        assert np.array_equal(splits[name].masks, official["train"].masks[index])
    other_seed = dataset_kind("tinyimagenet").build_splits({**dataset, "seed": 2}, archive)
    assert not np.array_equal(other_seed["val"].images, splits["val"].images)
    for field in ("images", "labels", "boxes", "masks"):
        assert np.array_equal(getattr(splits["test"], field), getattr(official["val"], field))


def test_tinyimagenet_kind_refuses_other_image_sizes(tmp_path):
    dataset = {"name": "tiny", "kind": "tinyimagenet", "image_size": 32, "tinyimagenet": {"root": str(tmp_path)}}
    with pytest.raises(ConfigError, match="64x64 images: set dataset.image_size to 64, got 32"):
        dataset_kind("tinyimagenet").build_splits(dataset, None)


def test_tinyimagenet_zip_without_wnids_is_named(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("something/else.txt", "x")
    with pytest.raises(FileNotFoundError, match="no wnids.txt"):
        read_tinyimagenet(tmp_path / "other.zip")


def test_tinyimagenet_zip_downloads_through_file_url_with_its_md5(tmp_path):
    source = tmp_path / "tiny-imagenet-200.zip"
    make_tinyimagenet_zip(source)
    dataset = {"name": "tiny", "kind": "tinyimagenet",
               "tinyimagenet": {"url": source.as_uri(), "md5": file_digest(source, "md5")}}
    archive = dataset_kind("tinyimagenet").archive(dataset)
    out = download(archive["url"], tmp_path / "out" / "archive.tar.gz", sha256=archive["sha256"], md5=archive["md5"])
    assert out.read_bytes() == source.read_bytes() and len(read_tinyimagenet(out)["val"]) == 3 * TINY_VAL_PER_CLASS
    with pytest.raises(ValueError, match="md5"):
        download(archive["url"], tmp_path / "bad" / "archive.tar.gz", md5="0" * 32)
    assert list((tmp_path / "bad").iterdir()) == []
