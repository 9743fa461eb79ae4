"""Datasets: the built-in generator, external loaders, and the split file format."""
from robustxai.data.splits import ImageSplit, load_split, save_split

__all__ = ["ImageSplit", "load_split", "save_split"]
