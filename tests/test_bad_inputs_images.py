"""Image files as users have them (issue 24 rows 8, 9): every raster format Pillow reads, EXIF orientation."""
import logging

import numpy as np
import pytest
from PIL import Image

from robustxai.data.images import IMAGE_SUFFIXES, read_rgb


def test_every_common_raster_format_is_taken_and_containers_are_not():
    assert {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"} <= IMAGE_SUFFIXES
    assert not {".h5", ".mpg", ".eps", ".txt", ".xml"} & IMAGE_SUFFIXES


def test_an_exif_rotated_jpeg_is_read_as_displayed(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # stored landscape, 40 wide, left half white
    stored[:, :20] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = np.asarray(read_rgb(tmp_path / "phone.jpg"))
    assert shown.shape == (40, 20, 3)  # displayed portrait
    assert shown[:18].mean() > 200 and shown[22:].mean() < 50  # the white half is now on top


def test_a_folder_of_tiff_and_gif_images_is_read_and_other_files_are_named(tmp_path, caplog):
    from robustxai.data.imagefolder import iter_imagefolder

    for folder, suffix in (("tiffs", ".tif"), ("gifs", ".gif")):
        (tmp_path / folder).mkdir()
        for k in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(tmp_path / folder / f"{k}{suffix}")
    (tmp_path / "gifs" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        parts = list(iter_imagefolder(tmp_path, None, 8))
    labels = np.concatenate([p.labels for p in parts])
    assert sorted(labels.tolist()) == [0, 0, 1, 1]
    assert "1 files that are not images Pillow can read were skipped: gifs/notes.txt" in caplog.text


def test_a_decompression_bomb_is_named_with_what_to_do(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64 x 64 is more than twice the limit: a "bomb"
    with pytest.raises(ValueError, match=r"huge\.png: Image size \(4096 pixels\) exceeds .*decompression bomb\. If it "
                                         r"is a real image, downscale it first"):
        read_rgb(tmp_path / "huge.png")


def test_a_full_disk_while_saving_a_checkpoint_names_the_file_and_the_free_space(tmp_path, monkeypatch):
    import torch

    from robustxai.models.checkpoint import save_payload

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 449792 vs 449680")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=r"model\.pt: writing the checkpoint failed \(.*unexpected pos.*\); \d+ MiB free "
                                      r"on its disk: free space"):
        save_payload({"a": 1}, tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []  # no partial file left
