"""Tiny ImageNet (CS231n, ``tiny-imagenet-200.zip``): 200 classes of 64x64 images with one box each.

Read directly from the official zip (no extraction) or from an extracted tree. The layout, under the
zip's top folder ``tiny-imagenet-200/`` (the folder an extracted ``root`` points at):

- ``wnids.txt``: the 200 WordNet ids, one a line; label = line index, class name = wnid;
- ``train/<wnid>/images/<wnid>_<k>.JPEG`` (500 a class) and ``train/<wnid>/<wnid>_boxes.txt``, lines
  ``<file> x0 y0 x1 y1`` (tab-separated);
- ``val/images/val_<k>.JPEG`` (10,000) and ``val/val_annotations.txt``, lines ``<file> <wnid> x0 y0 x1 y1``;
- ``test/images``: unlabelled, not read.

The annotation files are the index: the images they list are read, in their order. Their box
corners are inclusive pixel coordinates; boxes are stored with exclusive ends (``x1 + 1, y1 + 1``,
clipped to the image, as ``robustxai.data.splits`` requires) and each image's mask is its box region.
Greyscale JPEGs are converted to RGB.
"""
from __future__ import annotations

import re

import io
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robustxai.data.images import read_rgb
from robustxai.data.splits import MISSING_BOX, ImageSplit

TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
IMAGE_SIZE = 64  # pixels, every image
Entry = tuple[str, int, list[str]]  # (path in the tree, label, the four inclusive box corners as text)


@contextmanager
def _open_tree(source: str | os.PathLike) -> Iterator[Callable[[str], bytes]]:
    """A reader ``read(path) -> bytes`` of files by path relative to the ``tiny-imagenet-200`` folder,
    for ``source`` = the official zip or that folder extracted."""
    source = Path(source)
    if source.is_dir():
        root = source.resolve()

        def read(path: str) -> bytes:
            if root not in (root / path).resolve().parents:
                raise ValueError(f"{source}: {path} lies outside the data folder; refusing to read it")
            if not (source / path).is_file():
                raise FileNotFoundError(f"{source}: no {path} (expected the tiny-imagenet-200 folder)")
            return (source / path).read_bytes()
        yield read
        return
    with zipfile.ZipFile(source) as archive:
        tops = [name[:-len("wnids.txt")] for name in archive.namelist()
                if name == "wnids.txt" or name.endswith("/wnids.txt")]
        if not tops:
            raise FileNotFoundError(f"{source}: no wnids.txt (is it tiny-imagenet-200.zip?)")
        top, names = min(tops, key=len), set(archive.namelist())

        def read(path: str) -> bytes:
            if top + path not in names:
                raise FileNotFoundError(f"{source}: no member {top + path} (is it tiny-imagenet-200.zip?)")
            return archive.read(top + path)
        yield read


def exclusive_box(corners: list[str], size: int = IMAGE_SIZE) -> tuple[int, int, int, int]:
    """Inclusive corners ``x0 y0 x1 y1`` (text) -> (x0, y0, x1 + 1, y1 + 1) clipped to [0, size];
    ``MISSING_BOX`` when the clipped box is empty."""
    x0, y0, x1, y1 = (int(c) for c in corners)
    x0, y0 = min(max(x0, 0), size), min(max(y0, 0), size)
    x1, y1 = min(max(x1 + 1, 0), size), min(max(y1 + 1, 0), size)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else MISSING_BOX


def _lines(data: bytes) -> list[list[str]]:
    return [line.split() for line in data.decode().splitlines() if line.strip()]


def annotation_rows(data: bytes, where: str, names: int) -> list[tuple[list[str], list[str]]]:
    """(names, corners) of each non-empty line of an annotation file ``where``: ``names`` leading fields
    (an image file name, then a wnid) and four integer corners. A file name must be a plain name (no
    folder, no ``..``): the images are read from the folder the file names. A malformed line raises
    ValueError naming the file, the line number and what it expected."""
    rows = []
    for number, line in enumerate(data.decode().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        expected = "<file> " + ("<wnid> " if names == 2 else "") + "x0 y0 x1 y1"
        if len(fields) != names + 4:
            raise ValueError(f"{where} line {number}: {len(fields)} fields '{line.strip()}', expected '{expected}'")
        if not all(re.fullmatch("-?[0-9]+", field) for field in fields[names:]):  # not isdigit(): it accepts '²'
            raise ValueError(f"{where} line {number}: corners {fields[names:]} are not integers ('{expected}')")
        if "/" in fields[0] or "\\" in fields[0] or fields[0] in (".", ".."):
            raise ValueError(f"{where} line {number}: '{fields[0]}' is not a plain file name; refusing a path "
                             "that could leave the data folder")
        rows.append((fields[:names], fields[names:]))
    return rows


def _read_split(read: Callable[[str], bytes], entries: list[Entry], class_names: list[str],
                desc: str) -> ImageSplit:
    """Decode the listed images into uint8 (N, 64, 64, 3) with their labels, boxes and box masks."""
    images = np.empty((len(entries), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    boxes = np.empty((len(entries), 4), dtype=np.int32)
    masks = np.zeros((len(entries), IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for i, (path, _, corners) in enumerate(tqdm(entries, desc=desc, mininterval=2.0)):
        image = read_rgb(io.BytesIO(read(path)), path)
        if image.size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"{path}: {image.size[0]}x{image.size[1]} px, Tiny ImageNet images are "
                             f"{IMAGE_SIZE}x{IMAGE_SIZE}")
        images[i] = np.asarray(image)
        boxes[i] = x0, y0, x1, y1 = exclusive_box(corners)
        if x0 >= 0:
            masks[i, y0:y1, x0:x1] = True
    return ImageSplit(images=images, labels=np.array([label for _, label, _ in entries], dtype=np.int64),
                      boxes=boxes, class_names=class_names, masks=masks)


def read_tinyimagenet(source: str | os.PathLike) -> dict[str, ImageSplit]:
    """Read the official train and val sets: {"train", "val"} -> ImageSplit (uint8 (N, 64, 64, 3),
    boxes with exclusive ends, box masks; labels index ``wnids.txt``).

    ``source`` is ``tiny-imagenet-200.zip`` or the extracted ``tiny-imagenet-200`` folder.
    """
    with _open_tree(source) as read:
        wnids = [fields[0] for fields in _lines(read("wnids.txt"))]
        labels = {wnid: label for label, wnid in enumerate(wnids)}
        train = [(f"train/{wnid}/images/{file}", labels[wnid], corners) for wnid in wnids
                 for (file,), corners in annotation_rows(read(f"train/{wnid}/{wnid}_boxes.txt"),
                                                         f"{source}: train/{wnid}/{wnid}_boxes.txt", 1)]
        val = []
        for (file, wnid), corners in annotation_rows(read("val/val_annotations.txt"),
                                                     f"{source}: val/val_annotations.txt", 2):
            if wnid not in labels:
                raise ValueError(f"{source}: val/val_annotations.txt labels {file} '{wnid}', not in wnids.txt")
            val.append((f"val/images/{file}", labels[wnid], corners))
        return {"train": _read_split(read, train, wnids, "tinyimagenet train"),
                "val": _read_split(read, val, wnids, "tinyimagenet val")}
