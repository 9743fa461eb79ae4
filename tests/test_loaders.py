import io
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from robustxai.data.cifar import TEST_BATCHES, TRAIN_BATCHES, read_cifar10
from robustxai.data.download import download, file_digest
from robustxai.data.imagefolder import load_imagefolder, read_voc_boxes

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
