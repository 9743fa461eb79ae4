from importlib import metadata

import numpy as np
import pytest
from PIL import Image

from robustxai import __version__
from robustxai.cli import display_scale, load_images, main
from robustxai.models.any_model import imagenet_class_names
from robustxai.models import build_classifier, save_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(build_classifier("cifar_vgg_tiny", 10), path, "cifar_vgg_tiny", 10,
                    meta={"source": "train", "entry": {"image_size": 32}, "class_names": DIGITS})
    return path


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_explain_writes_a_grid_for_a_folder(tmp_path, checkpoint, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, colour in enumerate([(200, 10, 10), (10, 200, 10)]):
        Image.new("RGB", (40, 30), colour).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "grid.png"
    main(["explain", "--model", str(checkpoint), "--images", str(folder), "--methods", "gradient", "occlusion",
          "--out", str(out)])
    printed = capsys.readouterr().out
    assert "2 image(s) at 32 px x 2 method(s)" in printed  # the size the checkpoint was trained at
    assert all(any(f"img{i}.png: {name} (" in printed for name in DIGITS) for i in range(2))  # names, not indices
    with Image.open(out) as grid:
        width, height = grid.size
    assert width > height > 0  # 2 rows x 3 columns of panels


def test_explain_rejects_unknown_methods_and_empty_folders(tmp_path, checkpoint):
    with pytest.raises(SystemExit):
        main(["explain", "--model", str(checkpoint), "--images", str(tmp_path), "--methods", "lrp"])
    with pytest.raises(SystemExit, match="no images"):
        main(["explain", "--model", str(checkpoint), "--images", str(tmp_path)])


def test_explain_preprocesses_as_the_study_short_side_resize_then_centre_crop(tmp_path):
    image = Image.new("RGB", (60, 20), (255, 0, 0))  # red | green | blue thirds: the centre crop is all green
    image.paste((0, 255, 0), (20, 0, 40, 20))
    image.paste((0, 0, 255), (40, 0, 60, 20))
    image.save(tmp_path / "wide.png")
    images, names, short_sides = load_images(tmp_path / "wide.png", 8)
    assert images.shape == (1, 3, 8, 8) and names == ["wide.png"] and short_sides == [20]
    assert images[0, 1].min() > 0.85 and images[0, 0].max() < 0.15 and images[0, 2].max() < 0.15  # not squashed


def test_explain_refuses_a_target_outside_the_classes_and_a_size_below_one(tmp_path, checkpoint, capsys):
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "img.png")
    for target in ("99", "-1"):
        with pytest.raises(SystemExit, match=rf"^--target {target}: .*m\.pt has classes 0\.\.9$"):
            main(["explain", "--model", str(checkpoint), "--images", str(tmp_path / "img.png"), "--target", target])
    with pytest.raises(SystemExit):
        main(["explain", "--model", str(checkpoint), "--images", str(tmp_path / "img.png"), "--size", "0"])
    assert "argument --size: must be at least 1, got 0" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SystemExit, match=r"broken\.png: cannot read the image"):
        main(["explain", "--model", str(checkpoint), "--images", str(tmp_path / "broken.png")])


@pytest.mark.parametrize("out, message", [
    ("grid", r"^--out .*grid: the suffix '' is not an image format; use one of .*\.png"),  # was written as grid.png
    ("grid.txt", r"^--out .*grid\.txt: the suffix '\.txt' is not an image format"),
    ("folder", r"^--out .*folder: is a folder; name an image file, e.g. .*folder/explain\.png$"),
])
def test_explain_refuses_an_output_that_is_no_image_file(tmp_path, checkpoint, out, message):
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "img.png")
    (tmp_path / "folder").mkdir()
    with pytest.raises(SystemExit, match=message):
        main(["explain", "--model", str(checkpoint), "--images", str(tmp_path / "img.png"), "--out", str(tmp_path / out)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "img.png", "m.pt"]


def test_explain_names_a_model_file_that_is_no_checkpoint(tmp_path, checkpoint):
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "img.png")
    (tmp_path / "cut.pt").write_bytes(checkpoint.read_bytes()[:2000])
    for model in ("cut.pt", "img.png"):
        with pytest.raises(SystemExit, match=rf"^--model .*{model.replace('.', '[.]')}: not a readable robustxai "
                                             r"checkpoint \(unreadable torch file: .*\); give one the workflow wrote"):
            main(["explain", "--model", str(tmp_path / model), "--images", str(tmp_path / "img.png")])


def test_verify_prints_commands_that_run_as_printed(tmp_path, monkeypatch, capsys):
    from robustxai.models.checkpoint import save_checkpoint as save

    results = tmp_path / "résultats ü"
    save(build_classifier("cifar_vgg_tiny", 10), results / "models" / "a.pt", "cifar_vgg_tiny", 10)
    data = (results / "models" / "a.pt").read_bytes()
    (results / "models" / "a.pt").write_bytes(data[: len(data) // 2])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["verify", str(results)])  # an absolute path: the printed paths are relative, quoted
    out = capsys.readouterr().out
    assert "robustxai verify 'résultats ü' --fix, then, with your usual options: snakemake --forcerun " \
           "'résultats ü/models/a.pt'" in out


def test_version_is_the_installed_packages(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"robustxai {metadata.version('robustxai')}" == f"robustxai {__version__}"


def test_explain_takes_a_timm_name_with_its_input_size_and_imagenet_class_names(tmp_path, capsys):
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "img.png")
    main(["explain", "--model", "resnet18", "--random-weights", "--images", str(tmp_path / "img.png"), "--methods",
          "gradient", "gradcam", "--out", str(tmp_path / "grid.png")])
    captured = capsys.readouterr()
    assert "timm resnet18 (random weights): 1 image(s) at 224 px x 2 method(s)" in captured.out
    label = captured.out.split("img.png: ")[1].rsplit(" (", 1)[0]
    assert label in imagenet_class_names() and len(imagenet_class_names()) == 1000 and imagenet_class_names()[0] == "tench"
    assert "img.png: its short side (30 px) is upscaled to 224 px" in captured.err
    with pytest.raises(SystemExit, match="^--model resnet_nonexistent: 'resnet_nonexistent' is neither a file nor a timm "
                                         "model name"):
        main(["explain", "--model", "resnet_nonexistent", "--images", str(tmp_path / "img.png")])


def test_explain_warns_when_the_size_is_not_the_models_and_names_methods_it_cannot_run(tmp_path, checkpoint, capsys):
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "img.png")
    main(["explain", "--model", str(checkpoint), "--images", str(tmp_path / "img.png"), "--size", "64",
          "--out", str(tmp_path / "grid.png")])
    err = capsys.readouterr().err
    assert "--size 64: checkpoint" in err and "was made for 32 px images" in err
    with pytest.raises(SystemExit, match="^--methods explainer: this model has no explainer branch"):
        main(["explain", "--model", str(checkpoint), "--images", str(tmp_path / "img.png"), "--methods", "explainer"])
    with pytest.raises(SystemExit):  # needs a second model: not offered
        main(["explain", "--model", str(checkpoint), "--images", str(tmp_path / "img.png"), "--methods",
              "robust_counterpart"])
    assert "invalid choice: 'robust_counterpart'" in capsys.readouterr().err


def test_every_map_is_drawn_on_its_own_scale_so_an_offset_does_not_flatten_it():
    rise_like = np.full((4, 4), 0.09)
    rise_like[1, 1] = 0.11  # probabilities: a large offset, a small structure
    assert display_scale(rise_like) == {"cmap": "inferno", "vmin": 0.09, "vmax": 0.11}
    signed = np.array([[-0.5, 0.2], [0.1, 0.0]])
    assert display_scale(signed) == {"cmap": "bwr", "vmin": -0.5, "vmax": 0.5}
    assert display_scale(np.zeros((2, 2))) == {"cmap": "inferno", "vmin": 0.0, "vmax": 1.0}  # constant: no division


def test_tidy_report_refuses_a_file_that_is_no_report_in_one_line(tmp_path, capsys):
    (tmp_path / "page.html").write_text("<html></html>")
    for path in (tmp_path / "page.html", tmp_path / "missing.html"):
        with pytest.raises(SystemExit) as stop:
            main(["tidy-report", str(path)])
        assert stop.value.code == 1
        error = capsys.readouterr().err
        assert error.startswith("robustxai tidy-report: ") and error.count("\n") == 1 and path.name in error
