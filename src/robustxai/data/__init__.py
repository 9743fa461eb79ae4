"""Datasets: the built-in generator, external loaders, the split file format, and the registry of
dataset kinds (``robustxai.data.kinds``)."""
from robustxai.data.splits import ImageSplit, load_split, save_split

__all__ = ["ImageSplit", "load_split", "save_split"]
