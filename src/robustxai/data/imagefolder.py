"""ImageFolder trees (``root/<class>/<image>``) with Pascal-VOC XML boxes (the ImageNet val layout).

Annotations are looked up as ``<annotations>/<class>/<stem>.xml`` or flat ``<annotations>/<stem>.xml``.
Images are resized so the short side is ``image_size`` and centre-cropped to a square; boxes follow.
The stored box of an image is the box enclosing its boxes and the mask is the union of those boxes:
with ``boxes="class_object"`` (default, the ImageNet val convention) the boxes of the objects named by
the image's class folder (an object with another ``<name>`` is left out, and the files with such objects
are reported by name), with ``boxes="any_object"`` every object's box (hand-labelled files whose
objects are named e.g. "tabby cat").
"""
from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from robustxai.data.images import IMAGE_SUFFIXES, read_rgb
from robustxai.data.splits import MISSING_BOX, ImageSplit, boxes_from_masks, concatenate

log = logging.getLogger(__name__)
#: which VOC objects make an image's box and mask (``dataset.imagefolder.splits.<split>.boxes``)
BOX_OBJECTS = ("class_object", "any_object")
#: files named in the warning about objects left out; the rest are counted
NAMED_FILES = 10


def class_folders(images: str | os.PathLike) -> list[str]:
    """The sorted class sub-folder names of ``images`` ([] when it is not a folder yet). Hidden folders
    (``.ipynb_checkpoints``, ``.DS_Store`` folders, ``.git``) are not classes: they are left out and named
    in a warning, so they neither shift the labels nor change the class count."""
    root = Path(images)
    if not root.is_dir():
        return []
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    hidden = [name for name in folders if name.startswith(".")]
    if hidden:
        log.warning("%s: hidden folders %s are not classes; left out", root, hidden)
    return [name for name in folders if not name.startswith(".")]


def read_voc_boxes(xml_path: str | os.PathLike) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Objects of a Pascal-VOC XML file as (name, (x0, y0, x1, y1)), 0-based with exclusive ends.

    VOC stores 1-based inclusive corners, so x0 = xmin - 1 and x1 = xmax. Malformed XML, an object
    without a ``<bndbox>`` or a corner that is missing or not a number raise ValueError naming the file.
    Boxes are returned as written, even inverted or outside the image (``load_imagefolder`` clips them).
    """
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{xml_path}: malformed VOC XML ({error}); fix or replace the file") from error
    objects = []
    for obj in root.iter("object"):
        name = obj.findtext("name", default="").strip()
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{xml_path}: object '{name}' has no <bndbox>; fix or replace the file")
        corners = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = (box.findtext(tag) or "").strip()
            try:
                corners.append(int(float(text)))
            except ValueError:
                raise ValueError(f"{xml_path}: object '{name}' has {'no' if not text else f'a non-numeric ({text!r})'} "
                                 f"<{tag}> in its <bndbox>; fix or replace the file") from None
        xmin, ymin, xmax, ymax = corners
        objects.append((name, (xmin - 1, ymin - 1, xmax, ymax)))
    return objects


def _annotation_path(annotations: Path, class_name: str, stem: str) -> Path | None:
    for candidate in (annotations / class_name / f"{stem}.xml", annotations / f"{stem}.xml"):
        if candidate.is_file():
            return candidate
    return None


def resize_crop(image: Image.Image, size: int) -> tuple[np.ndarray, float, int, int]:
    """Of an RGB image: resize short side to ``size`` (bilinear) then centre-crop, as every split of an
    image dataset is made; returns (uint8 (size, size, 3), scale, dx, dy): the crop, the resize factor
    and the crop's offset in the resized image (px)."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    resized = image.resize((new_w, new_h), Image.BILINEAR)
    dx, dy = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(resized.crop((dx, dy, dx + size, dy + size)), dtype=np.uint8), scale, dx, dy


def _mask_of(path: Path, label: int, class_names: list[str], annotations: Path, scale: float, dx: int, dy: int,
             image_size: int, boxes: str = "class_object", left_out: dict[Path, list[str]] | None = None) -> np.ndarray:
    """The union (S, S) bool of the boxes in ``path``'s VOC file, in the resized and cropped image
    (``resize_crop``'s scale and offsets): of the objects named ``class_names[label]`` (or unnamed) for
    ``boxes="class_object"``, of every object for ``"any_object"``. Objects left out for their name are
    recorded in ``left_out`` (VOC file -> their names); boxes outside the crop are left out with a warning."""
    mask = np.zeros((image_size, image_size), dtype=bool)
    xml = _annotation_path(annotations, class_names[label], path.stem)
    if xml is None:
        raise FileNotFoundError(f"no VOC annotation for {path} under {annotations}")
    for name, (x0, y0, x1, y1) in read_voc_boxes(xml):
        if boxes == "class_object" and name and name != class_names[label]:
            if left_out is not None:
                left_out.setdefault(xml, []).append(name)
            continue
        box = np.array([x0 * scale - dx, y0 * scale - dy, x1 * scale - dx, y1 * scale - dy])
        bx0, by0 = (int(np.clip(np.floor(v), 0, image_size)) for v in box[:2])
        bx1, by1 = (int(np.clip(np.ceil(v), 0, image_size)) for v in box[2:])
        if bx1 > bx0 and by1 > by0:  # what lies inside the crop; a box partly outside is clipped
            mask[by0:by1, bx0:bx1] = True
        else:
            log.warning("%s: box %s of '%s' is inverted, empty or outside the image; left out", xml,
                        (x0 + 1, y0 + 1, x1, y1), name or class_names[label])
    if not mask.any():
        log.warning("%s: no box of '%s' inside the image: %s counts as having no box (localisation "
                    "metrics score it NaN)", xml, class_names[label] if boxes == "class_object" else "any object",
                    path)
    return mask


def report_left_out_objects(left_out: dict[Path, list[str]], annotations: Path) -> None:
    """Warn, naming up to ``NAMED_FILES`` VOC files (relative to ``annotations``) and counting the rest,
    that objects named other than the image's class folder were left out (``boxes: class_object``)."""
    if not left_out:
        return
    files = sorted(left_out)
    named = ", ".join(str(f.relative_to(annotations)) if f.is_relative_to(annotations) else str(f)
                      for f in files[:NAMED_FILES])
    more = f" and {len(files) - NAMED_FILES} more" if len(files) > NAMED_FILES else ""
    names = sorted({name for found in left_out.values() for name in found})
    log.warning("%s: %d VOC file(s) have objects whose <name> is not the image's class folder (%s), and "
                "boxes: class_object leaves their boxes out (an image left with none counts as boxless): "
                "%s%s. Set boxes: any_object on the split (dataset.imagefolder.splits.<split>.boxes) to keep "
                "every object's box", annotations, len(files), ", ".join(repr(n) for n in names[:NAMED_FILES]),
                named, more)


def iter_imagefolder(images: str | os.PathLike, annotations: str | os.PathLike | None, image_size: int,
                     class_names: list[str] | None = None, part_images: int = 512,
                     boxes: str = "class_object") -> Iterator[ImageSplit]:
    """Read an ImageFolder tree as consecutive ImageSplit parts of up to ``part_images`` uint8
    (K, S, S, 3) images with boxes and masks, so a split of any size is read holding one part
    (``SplitWriter`` writes them). The file list is checked before the first image is read.

    Args:
        images: root whose sub-folders are classes.
        annotations: root of the VOC XML files, or None (every box then ``MISSING_BOX``, no masks).
        image_size: side S of the output images in pixels.
        class_names: class order (label = index); default sorted folder names. Folders not in it are
            an error, so a typo cannot silently relabel images.
        part_images: images per part.
        boxes: which VOC objects make the box and mask (``BOX_OBJECTS``): "class_object", those named
            by the image's class folder (files with other objects are reported by name once the tree
            is read), or "any_object", every object.
    """
    if boxes not in BOX_OBJECTS:
        raise ValueError(f"boxes={boxes!r}: expected one of {list(BOX_OBJECTS)}")
    images, annotations = Path(images), Path(annotations) if annotations else None
    folders = class_folders(images)
    class_names = list(class_names) if class_names else folders
    unknown = set(folders) - set(class_names)
    if unknown:
        raise ValueError(f"{images}: folders {sorted(unknown)} are not in class_names")
    files, skipped = [], []
    for folder in folders:
        for f in sorted((images / folder).iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append((f, class_names.index(folder)))
            elif not f.name.startswith("."):
                skipped.append(f)
    if skipped:
        log.warning("%s: %d files that are not images Pillow can read were skipped: %s%s", images, len(skipped),
                    ", ".join(str(f.relative_to(images)) for f in skipped[:NAMED_FILES]),
                    "" if len(skipped) <= NAMED_FILES else f" and {len(skipped) - NAMED_FILES} more")
    if not files:
        raise FileNotFoundError(f"{images}: no images found in class sub-folders")
    empty = sorted(set(folders) - {class_names[label] for _, label in files})
    if empty:
        log.warning("%s: %d class folders hold no images, so the split has none of those classes: %s", images,
                    len(empty), ", ".join(empty[:NAMED_FILES]) + ("" if len(empty) <= NAMED_FILES else ", ..."))
    left_out: dict[Path, list[str]] = {}
    mask_of = None if annotations is None else (
        lambda path, label, scale, dx, dy: _mask_of(path, label, class_names, annotations, scale, dx, dy, image_size,
                                                    boxes, left_out))
    yield from iter_image_parts(files, image_size, class_names, str(images), part_images, mask_of)
    if annotations is not None:
        report_left_out_objects(left_out, annotations)


def iter_image_parts(files: list[tuple[Path, int]], image_size: int, class_names: list[str], desc: str,
                     part_images: int = 512, mask_of: Callable[..., np.ndarray] | None = None,
                     extras: dict[str, np.ndarray] | None = None,
                     label_subset: np.ndarray | None = None) -> Iterator[ImageSplit]:
    """Image files read as consecutive ImageSplit parts of up to ``part_images`` uint8 (K, S, S, 3)
    images (``resize_crop`` to S = ``image_size``), so a split of any size is read holding one part.

    Args:
        files: (path, label) per image, in split order; labels index ``class_names``.
        desc: what the progress bar calls the files.
        mask_of: (path, label, scale, dx, dy) -> the image's (S, S) bool object mask in the crop, or
            None (every box then ``MISSING_BOX``, no masks).
        extras: per-image values (len(files),) stored with the split (e.g. corruption, severity).
        label_subset: the split's ``ImageSplit.label_subset`` (sorted class indices), or None.
    """
    extras = extras or {}
    with tqdm(total=len(files), desc=desc, unit="img", mininterval=2.0) as bar:
        for start in range(0, len(files), part_images):
            part = files[start:start + part_images]
            out = np.empty((len(part), image_size, image_size, 3), dtype=np.uint8)
            masks = np.zeros((len(part), image_size, image_size), dtype=bool) if mask_of else None
            for i, (path, label) in enumerate(part):
                out[i], scale, dx, dy = resize_crop(read_rgb(path), image_size)
                if mask_of is not None:
                    masks[i] = mask_of(path, label, scale, dx, dy)
                bar.update()
            boxes = (boxes_from_masks(masks) if masks is not None
                     else np.tile(np.array(MISSING_BOX, dtype=np.int32), (len(part), 1)))
            yield ImageSplit(images=out, labels=np.array([label for _, label in part], dtype=np.int64),
                             boxes=boxes, class_names=class_names, masks=masks,
                             extras={name: values[start:start + part_images] for name, values in extras.items()},
                             label_subset=label_subset)


def load_imagefolder(images: str | os.PathLike, annotations: str | os.PathLike | None, image_size: int,
                     class_names: list[str] | None = None, boxes: str = "class_object") -> ImageSplit:
    """The whole ImageFolder tree as one ImageSplit (arguments as :func:`iter_imagefolder`); for
    small trees, e.g. the CLI's and the tests'."""
    return concatenate(list(iter_imagefolder(images, annotations, image_size, class_names, boxes=boxes)))
