"""ImageNet out-of-distribution test sets (ImageNet-A, -R, V2, -C, Sketch) read as dataset splits.

``ood_format(name)`` gives the reader of one on-disk layout (registry ``OOD_FORMATS``, readers in
``formats``); the ``imagefolder`` dataset kind builds one split per entry of its ``ood`` settings block.
Every split is labelled in the 1000-class ImageNet index space (the sorted wnids, ``lists.imagenet_wnids``);
the 200-class sets A and R also record the classes their labels can take (``ImageSplit.label_subset``),
which evaluation restricts predictions to. The class lists and AlexNet's ImageNet-C errors are package
data, read by ``lists``.
"""
from __future__ import annotations

from robustxai.registry import registered_class

#: config ``format`` -> "module:Class" within this package
OOD_FORMATS: dict[str, str] = {
    "imagenet_a": "formats:ImageNetA",
    "imagenet_r": "formats:ImageNetR",
    "imagenet_sketch": "formats:ImageNetSketch",
    "imagenet_v2": "formats:ImageNetV2",
    "imagenet_c": "formats:ImageNetC",
}


def ood_format(name: str):
    """The reader registered as ``name`` (a ``formats.OODFormat``); unknown names raise ValueError naming the known."""
    return registered_class(OOD_FORMATS, __name__, "ImageNet OOD format", name)()


__all__ = ["OOD_FORMATS", "ood_format"]
