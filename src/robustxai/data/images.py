"""Decoding image files to 8-bit RGB, the one place image bytes are read."""
from __future__ import annotations

import os
from typing import IO

import numpy as np
from PIL import Image, ImageOps

#: Pillow modes of 16-bit greyscale images (PNG opens as "I;16" or, in older Pillow, as "I")
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I"}
#: 16-bit values per 8-bit step (65535 / 255)
SIXTEEN_TO_EIGHT_BIT = 257


#: Pillow formats registered for opening that cannot decode pixels on their own (stubs for scientific
#: containers, video, vector formats needing Ghostscript): their suffixes (.h5, .mpg, .eps, ...) are not images here
NOT_RASTER = frozenset({"BUFR", "GRIB", "HDF5", "MPEG", "EPS", "WMF"})


def readable_suffixes() -> frozenset[str]:
    """Lower-case file suffixes of every raster image format this Pillow can open (.jpg, .png, .tif,
    .gif, .jfif, .webp, ...; not ``NOT_RASTER``): image folders take all of them."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN and fmt not in NOT_RASTER)


#: the suffixes image folders read (``readable_suffixes``)
IMAGE_SUFFIXES = readable_suffixes()


def read_rgb(file: str | os.PathLike | IO[bytes], name: str | os.PathLike | None = None) -> Image.Image:
    """The image in ``file`` (a path or a binary file object), fully decoded as 8-bit RGB.

    The image is turned as it is displayed (its EXIF orientation applied, as viewers do: a phone photo
    stored sideways comes out upright). 16-bit greyscale images are scaled by their bit depth (value /
    257, so 65535 becomes 255; Pillow's own conversion clips them at 255, which turns them white). For
    multi-frame files (GIF, TIFF) the first frame. A truncated or unreadable file raises ValueError
    naming it (``name``, default ``file``).
    """
    try:
        with Image.open(file) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
            if image.mode in SIXTEEN_BIT_MODES:
                values = np.asarray(image, dtype=np.float64) / SIXTEEN_TO_EIGHT_BIT
                return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L").convert("RGB")
            return image.convert("RGB")
    except Image.DecompressionBombError as error:
        raise ValueError(f"{name or file}: {error}; a file this large is likely a decompression bomb. If it is a "
                         "real image, downscale it first (or raise PIL.Image.MAX_IMAGE_PIXELS)") from error
    except OSError as error:  # truncated, or not an image (PIL's UnidentifiedImageError is an OSError)
        raise ValueError(f"{name or file}: cannot read the image ({error}); replace the file (e.g. download "
                         "it again)") from error
