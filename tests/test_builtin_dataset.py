import numpy as np
import pytest

from robustxai.data.builtin import CLASS_NAMES, SPLITS, digit_alpha, make_builtin_splits, paste_digit
from robustxai.data.splits import boxes_from_masks, load_split, save_split

SIZES = {"train": 60, "val": 20, "test": 30, "ood_background": 30, "ood_corruption": 36}


@pytest.fixture(scope="module")
def splits():
    return make_builtin_splits(SIZES, image_size=32, seed=3)


def test_generation_is_deterministic_from_the_seed(splits):
    again = make_builtin_splits(SIZES, image_size=32, seed=3)
    other = make_builtin_splits(SIZES, image_size=32, seed=4)
    for name in SPLITS:
        assert np.array_equal(splits[name].images, again[name].images)
        assert np.array_equal(splits[name].boxes, again[name].boxes)
    assert not np.array_equal(splits["train"].images, other["train"].images)


def test_splits_sizes_classes_and_shapes(splits):
    assert set(splits) == set(SPLITS)
    for name, split in splits.items():
        assert len(split) == SIZES[name]
        assert split.images.shape == (SIZES[name], 32, 32, 3) and split.images.dtype == np.uint8
        assert split.class_names == CLASS_NAMES
    assert len(CLASS_NAMES) >= 10
    assert len(np.unique(splits["train"].labels)) == 10


def test_boxes_are_the_tight_boxes_of_the_masks(splits):
    for split in splits.values():
        assert np.array_equal(split.boxes, boxes_from_masks(split.masks))
        for (x0, y0, x1, y1), mask in zip(split.boxes, split.masks):
            assert mask[y0:y1, x0:x1].sum() == mask.sum() > 0  # every object pixel inside the box
            # tight: each edge row / column of the box touches the object
            assert mask[y0, x0:x1].any() and mask[y1 - 1, x0:x1].any()
            assert mask[y0:y1, x0].any() and mask[y0:y1, x1 - 1].any()


def test_objects_cover_at_most_a_quarter_of_the_image(splits):
    for split in splits.values():
        x0, y0, x1, y1 = split.boxes.T
        assert ((x1 - x0) * (y1 - y0) <= 32 * 32 / 4).all()


def test_mask_is_exactly_the_pixels_the_digit_changes():
    rng = np.random.default_rng(0)
    background = rng.uniform(0, 1, (32, 32, 3))
    alpha = digit_alpha(np.eye(8) * 16, 12)
    image, mask = paste_digit(background, alpha, top=5, left=9, rng=rng)
    changed = np.abs(image - background).max(axis=2) > 0
    assert np.array_equal(changed, mask)
    assert boxes_from_masks(mask[None])[0].tolist() == [9, 5, 21, 17]  # the diagonal spans the full 12 px


def test_ood_splits_shift_the_distribution(splits):
    corruption = splits["ood_corruption"]
    assert set(corruption.extras["corruption"]) == {"gaussian_noise", "gaussian_blur", "contrast"}
    assert set(corruption.extras["severity"].tolist()) == {1, 2, 3}
    # contrast-corrupted images are flatter than clean test images on average
    is_contrast = corruption.extras["corruption"] == "contrast"
    assert corruption.images[is_contrast].std(axis=(1, 2, 3)).mean() < splits["test"].images.std(axis=(1, 2, 3)).mean()


def test_split_file_round_trip(splits, tmp_path):
    save_split(splits["ood_corruption"], tmp_path / "s.h5")
    loaded = load_split(tmp_path / "s.h5")
    assert np.array_equal(loaded.images, splits["ood_corruption"].images)
    assert np.array_equal(loaded.masks, splits["ood_corruption"].masks)
    assert np.array_equal(loaded.extras["severity"], splits["ood_corruption"].extras["severity"])
    images, labels = loaded.tensors()
    assert images.shape == (36, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert labels.tolist() == splits["ood_corruption"].labels.tolist()


def test_missing_split_size_is_an_error():
    with pytest.raises(ValueError, match="ood_background"):
        make_builtin_splits({"train": 1, "val": 1, "test": 1, "ood_corruption": 1})
