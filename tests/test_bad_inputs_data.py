"""Bad data files: each error names the file and says what to do; nothing is silently wrong.

The data readers' cases of issue 14 (the config's are in ``test_bad_inputs.py``).
"""
import io
import logging
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from robustxai.data import splits as splits_module
from robustxai.data.cifar import TRAIN_BATCHES, read_cifar10
from robustxai.data.download import download, file_digest
from robustxai.data.imagefolder import load_imagefolder, read_voc_boxes
from robustxai.data.images import read_rgb
from robustxai.data.splits import MISSING_BOX, ImageSplit, load_split, save_split
from robustxai.data.tinyimagenet import read_tinyimagenet
from test_loaders import make_cifar_archive, make_tinyimagenet_tree, write_voc


# 3. a CIFAR archive from elsewhere cannot run code

class RunsACommand:
    def __reduce__(self):
        return os.system, ("touch hacked",)


def replace_member(archive_path, name, payload: bytes, out_path):
    """A copy of a tar.gz with member ``name`` replaced by ``payload``."""
    with tarfile.open(archive_path) as source, tarfile.open(out_path, "w:gz") as target:
        for member in source.getmembers():
            data = payload if member.name.endswith("/" + name) else source.extractfile(member).read()
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize("member", ["batches.meta", TRAIN_BATCHES[1]])
def test_a_cifar_archive_with_a_malicious_pickle_is_refused(tmp_path, monkeypatch, member):
    monkeypatch.chdir(tmp_path)
    make_cifar_archive(tmp_path / "good.tar.gz")
    replace_member(tmp_path / "good.tar.gz", member, pickle.dumps({"data": RunsACommand()}, protocol=2),
                   tmp_path / "bad.tar.gz")
    with pytest.raises(ValueError, match=rf"^cifar-10-batches-py/{member} in {tmp_path / 'bad.tar.gz'}: refuses to "
                                         r"unpickle posix\.system; this is not a CIFAR-10 batch, so the archive is "
                                         r"not the official cifar-10-python\.tar\.gz: delete it and download that one$"):
        read_cifar10(tmp_path / "bad.tar.gz")
    assert not (tmp_path / "hacked").exists()


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_cifar_archive_of_plain_arrays_still_loads(tmp_path, protocol):
    make_cifar_archive(tmp_path / "good.tar.gz")
    data = np.arange(4 * 3072, dtype=np.uint8).reshape(4, 3072)
    replace_member(tmp_path / "good.tar.gz", TRAIN_BATCHES[0], pickle.dumps({"data": data, "labels": [1, 2, 3, 4]},
                                                                            protocol=protocol), tmp_path / "p.tar.gz")
    train = read_cifar10(tmp_path / "p.tar.gz")["train"]
    assert train.labels[:4].tolist() == [1, 2, 3, 4] and train.images[0, 0, 0].tolist() == [0, 0, 0]
    assert (train.boxes == MISSING_BOX).all()  # CIFAR-10 has no boxes


def test_a_truncated_cifar_member_names_itself(tmp_path):
    make_cifar_archive(tmp_path / "good.tar.gz")
    replace_member(tmp_path / "good.tar.gz", "batches.meta", pickle.dumps({"label_names": ["a"] * 10})[:10],
                   tmp_path / "cut.tar.gz")
    with pytest.raises(ValueError, match=r"^cifar-10-batches-py/batches\.meta in .*cut\.tar\.gz: .*; this is not a "
                                         r"CIFAR-10 batch"):
        read_cifar10(tmp_path / "cut.tar.gz")


def test_a_download_without_a_checksum_is_refused(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"^refusing to download file://.*f\.bin without a sha256 or md5 checksum: "
                                         r"add the file's checksum to the config$"):
        download((tmp_path / "f.bin").as_uri(), tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    download((tmp_path / "f.bin").as_uri(), tmp_path / "out.bin", sha256=file_digest(tmp_path / "f.bin"))
    assert (tmp_path / "out.bin").read_bytes() == b"x"


# 5. VOC files: errors name the file; degenerate boxes are clipped or left out, with a warning

@pytest.mark.parametrize("xml, message", [
    ("<annotation><object><name>n01</name>", r"malformed VOC XML \(no element found: line 1, column 36\); fix or "
                                             r"replace the file"),
    ("<annotation><object><name>n01</name></object></annotation>", r"object 'n01' has no <bndbox>; fix or replace "
                                                                   r"the file"),
    ("<annotation><object><name>n01</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>5</ymax></bndbox></object>"
     "</annotation>", r"object 'n01' has no <xmax> in its <bndbox>; fix or replace the file"),
    ("<annotation><object><name>n01</name><bndbox><xmin>1</xmin><ymin>one</ymin><xmax>5</xmax><ymax>5</ymax>"
     "</bndbox></object></annotation>", r"object 'n01' has a non-numeric \('one'\) <ymin> in its <bndbox>; fix or "
                                        r"replace the file"),
])
def test_a_bad_voc_file_is_named(tmp_path, xml, message):
    (tmp_path / "a.xml").write_text(xml)
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'a.xml'}: {message}$"):
        read_voc_boxes(tmp_path / "a.xml")


def one_image_tree(tmp_path, box, size=(40, 40)):
    """An ImageFolder of one 40x40 image of class n01 with one VOC box (1-based inclusive corners)."""
    (tmp_path / "val" / "n01").mkdir(parents=True)
    (tmp_path / "boxes").mkdir()
    Image.new("RGB", size, (200, 10, 10)).save(tmp_path / "val" / "n01" / "a.png")
    write_voc(tmp_path / "boxes" / "a.xml", "a", *size, [("n01", box)])
    return tmp_path / "val", tmp_path / "boxes"


def test_a_box_partly_outside_the_image_is_clipped(tmp_path):
    split = load_imagefolder(*one_image_tree(tmp_path, (-9, 31, 20, 60)), image_size=40)
    assert split.boxes[0].tolist() == [0, 30, 20, 40]


@pytest.mark.parametrize("box", [(60, 60, 90, 90), (30, 5, 10, 20), (-20, -20, -5, -5)])  # outside, inverted, negative
def test_a_box_with_nothing_inside_the_image_becomes_missing(tmp_path, caplog, box):
    with caplog.at_level(logging.WARNING, logger="robustxai.data.imagefolder"):
        split = load_imagefolder(*one_image_tree(tmp_path, box), image_size=40)
    assert split.boxes[0].tolist() == list(MISSING_BOX) and not split.masks[0].any()
    xml = tmp_path / "boxes" / "a.xml"
    assert f"{xml}: box {box} of 'n01' is inverted, empty or outside the image; left out" in caplog.text
    assert f"{xml}: no box of 'n01' inside the image: {tmp_path / 'val' / 'n01' / 'a.png'} counts as having no box" \
        in caplog.text


# 5. unreadable images are named

def test_a_truncated_jpeg_is_named(tmp_path):
    (tmp_path / "val" / "n01").mkdir(parents=True)
    jpeg = tmp_path / "val" / "n01" / "a.JPEG"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg)
    jpeg.write_bytes(jpeg.read_bytes()[:600])
    with pytest.raises(ValueError, match=rf"^{jpeg}: cannot read the image \(.*[Tt]runcated.*\); replace the "
                                         r"file \(e\.g\. download it again\)$"):
        load_imagefolder(tmp_path / "val", None, image_size=32)


def test_a_file_that_is_no_image_is_named_in_tiny_imagenet(tmp_path):
    make_tinyimagenet_tree(tmp_path / "tiny")
    victim = next((tmp_path / "tiny" / "val" / "images").iterdir())
    victim.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=rf"^val/images/{victim.name}: cannot read the image \(cannot identify image "
                                         r"file"):
        read_tinyimagenet(tmp_path / "tiny")


def test_class_folders_without_images_are_named(tmp_path, caplog):
    for name in ("a", "c"):
        (tmp_path / "tree" / name).mkdir(parents=True)
        Image.new("RGB", (40, 40), (9, 9, 9)).save(tmp_path / "tree" / name / "1.png")
    (tmp_path / "tree" / "b").mkdir()
    (tmp_path / "tree" / "b" / "notes.txt").write_text("no image")
    with caplog.at_level(logging.WARNING):
        split = load_imagefolder(tmp_path / "tree", None, 32)
    assert split.labels.tolist() == [0, 2] and split.class_names == ["a", "b", "c"]
    assert f"{tmp_path / 'tree'}: 1 class folders hold no images, so the split has none of those classes: b" in caplog.text


# 7. 16-bit PNGs keep their values

def test_a_16_bit_png_is_scaled_by_its_bit_depth(tmp_path):
    ramp = (np.arange(8, dtype=np.uint16) * 8000).reshape(1, 8).repeat(4, 0)  # 0 .. 56000 of 65535
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode.startswith("I")  # Pillow reads it as 16-bit ("I;16" or "I")
    rgb = np.asarray(read_rgb(tmp_path / "deep.png"))
    assert rgb.shape == (4, 8, 3) and (rgb[..., 0] == rgb[..., 2]).all()
    assert rgb[0, :, 0].tolist() == [round(v * 8000 / 257) for v in range(8)]  # 0, 31, 62, ..., 218: not white


# 7. a failed write leaves no file behind

def test_a_failed_split_write_leaves_no_file(tmp_path):
    split = ImageSplit(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.int64), np.zeros((2, 4), np.int32), ["a"])
    with pytest.raises(OSError, match="No space left on device"):
        with splits_module.SplitWriter(tmp_path / "data" / "test.h5") as out:
            out.append(split)  # one part written, then the disk fills up
            raise OSError(28, "No space left on device")
    assert list((tmp_path / "data").iterdir()) == []
    with pytest.raises(ValueError, match="nothing was appended"):
        with splits_module.SplitWriter(tmp_path / "data" / "test.h5"):
            pass
    assert list((tmp_path / "data").iterdir()) == []
    save_split(split, tmp_path / "data" / "test.h5")
    assert len(load_split(tmp_path / "data" / "test.h5")) == 2


def test_a_failed_download_leaves_no_file(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"payload")
    with pytest.raises(ValueError, match=r"f\.bin\.part: sha256 is .*, expected 00+; the file is corrupt or not the "
                                         r"one the config names"):
        download((tmp_path / "f.bin").as_uri(), tmp_path / "d" / "f.bin", sha256="0" * 64)
    assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize("line, message", [
    ("../../secret.JPEG {wnid} 0 0 10 10", r"val/val_annotations\.txt line 1: '\.\./\.\./secret\.JPEG' is not a plain "
                                           r"file name; refusing a path that could leave the data folder"),
    ("val_0.JPEG {wnid} 0 abc 10 10", r"val/val_annotations\.txt line 1: corners \['0', 'abc', '10', '10'\] are not "
                                      r"integers \('<file> <wnid> x0 y0 x1 y1'\)"),
    ("val_0.JPEG {wnid} 0 \u00b2 10 10", r"val/val_annotations\.txt line 1: corners \['0', '\u00b2', '10', '10'\] "
                                         r"are not integers"),  # str.isdigit() accepts '²', int() does not
    ("val_0.JPEG", r"val/val_annotations\.txt line 1: 1 fields 'val_0\.JPEG', expected '<file> <wnid> x0 y0 x1 y1'"),
])
def test_tiny_imagenet_annotations_that_leave_the_tree_or_are_malformed_are_refused_naming_the_line(
        tmp_path, line, message):
    make_tinyimagenet_tree(tmp_path / "tiny")
    (tmp_path / "secret.JPEG").write_bytes(b"outside the data root")
    annotations = tmp_path / "tiny" / "val" / "val_annotations.txt"
    wnid = annotations.read_text().split()[1]
    annotations.write_text(line.format(wnid=wnid) + "\n" + annotations.read_text())
    with pytest.raises(ValueError, match=message):
        read_tinyimagenet(tmp_path / "tiny")


def _tar_of(tmp_path, files):
    import tarfile

    source = tmp_path / "archive-src"
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    with tarfile.open(tmp_path / "set.tar", "w") as tar:
        tar.add(source, arcname="set")
    return tmp_path / "set.tar"


def test_unpacking_never_replaces_a_folder_the_workflow_did_not_unpack(tmp_path):
    from robustxai.data.extract import UNPACKED_MARKER, check_unpack_target, extract_archives

    archive = _tar_of(tmp_path, {"n01/a.jpg": "a"})
    target = tmp_path / "data"  # e.g. a parent of the test split, holding the user's files
    (target / "test").mkdir(parents=True)
    (target / "test" / "img.png").write_text("the test images")
    (target / "unrelated.txt").write_text("someone's file")
    (tmp_path / "data.partial").mkdir()  # a folder named like the old fixed temporary name
    (tmp_path / "data.partial" / "keep.txt").write_text("not ours either")
    message = r"^key\.images: .*data already exists and holds files the workflow did not unpack"
    with pytest.raises(ValueError, match=message):
        check_unpack_target(target, "key.images")
    with pytest.raises(ValueError, match="holds files the workflow did not unpack"):
        extract_archives([archive], target, strip_components=1)
    assert (target / "test" / "img.png").read_text() == "the test images"
    assert (target / "unrelated.txt").exists() and (tmp_path / "data.partial" / "keep.txt").exists()
    # a fresh folder is unpacked and marked; a rerun may replace what it unpacked itself
    assert extract_archives([archive], tmp_path / "fresh", strip_components=1) == 1
    assert (tmp_path / "fresh" / UNPACKED_MARKER).is_file() and (tmp_path / "fresh" / "n01" / "a.jpg").is_file()
    check_unpack_target(tmp_path / "fresh", "key.images")
    assert extract_archives([archive], tmp_path / "fresh", strip_components=1) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("fresh")) == ["fresh"]  # no leftovers


def test_the_plan_refuses_an_ood_folder_with_archives_that_holds_other_files(tmp_path):
    from workflow_runs import ROOT, snakemake

    import yaml

    config = yaml.safe_load((ROOT / "configs" / "imagenet.yaml").read_text())
    ood_name, ood = next(iter(config["dataset"]["imagefolder"]["ood"].items()))
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("user data")
    ood.update(images=str(occupied), archives=[{"url": "https://example.org/set.tar", "sha256": "0" * 64}])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", config=path, check=False)
    assert result.returncode != 0
    assert (f"config.dataset.imagefolder.ood.{ood_name}.images: {occupied} already exists and holds files the "
            "workflow did not unpack") in result.stdout + result.stderr
    assert (occupied / "mine.txt").exists()
