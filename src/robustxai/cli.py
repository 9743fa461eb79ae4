"""Command line: ``robustxai explain`` draws attribution maps for a few images before a full study;
``robustxai verify`` checks a study's result files and lists (``--fix``: removes) the corrupt ones.

    robustxai explain --model results/models/vgg_tiny-vanilla.pt --images digit.png \\
        --methods gradient gradcam rise --out grid.png
    robustxai explain --model resnet50.a1_in1k --images photos/ --methods gradcam rise
    robustxai verify results --fix
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from robustxai import __version__
from robustxai.attribution import METHODS, make_method
from robustxai.data.imagefolder import IMAGE_SUFFIXES, resize_crop
from robustxai.data.images import read_rgb
from robustxai.integrity import CorruptFileError
from robustxai.models.any_model import AnyModel, load_any_model

#: methods that explain with another model besides the one given, which the command cannot name
NEEDS_ANOTHER_MODEL = {"robust_counterpart": "takes its maps from another configured model (a study's config names it)"}
#: the methods the command runs
CLI_METHODS = sorted(set(METHODS) - set(NEEDS_ANOTHER_MODEL))
#: an image's short side may be this many times the model's input size (either way) before a warning
SIZE_RATIO_WARNED = 4


def load_images(path: Path, size: int) -> tuple[torch.Tensor, list[str], list[int]]:
    """Images (N, 3, size, size) in [0, 1] from one file or every image file in a folder (sorted), each
    preprocessed as the study's image datasets are: short side resized to ``size``, then centre-cropped;
    with their file names and their short sides before resizing (px)."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    pictures = [read_rgb(file) for file in files]
    arrays = [resize_crop(picture, size)[0] for picture in pictures]
    images = torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    return images, [f.name for f in files], [min(picture.size) for picture in pictures]


def size_warnings(loaded: AnyModel, size: int, given: bool, names: list[str], short_sides: list[int]) -> list[str]:
    """What the user should know about sizes: ``size`` (``given`` by --size) is not the input size the
    model's weights were made for, or it is unknown; an image is much smaller or larger than ``size``
    (upscaled: no detail the model could use; shrunk: most of what the photo shows is gone)."""
    found = []
    if loaded.input_size is None:
        found.append(f"the input size of {loaded.source} is not recorded; images are resized to {size} px")
    elif given and size != loaded.input_size:
        found.append(f"--size {size}: {loaded.source} was made for {loaded.input_size} px images; its predictions "
                     "and maps at another size may mean little")
    for name, side in zip(names, short_sides):
        if side * SIZE_RATIO_WARNED < size:
            found.append(f"{name}: its short side ({side} px) is upscaled to {size} px")
        elif side > SIZE_RATIO_WARNED * size:
            found.append(f"{name}: its short side ({side} px) is shrunk to {size} px: the model sees far less than "
                         "the image shows")
    return found


def display_scale(values: np.ndarray) -> dict:
    """matplotlib ``imshow`` colour settings (cmap, vmin, vmax) for one map (H, W): signed maps red / blue
    up to their largest |value|, non-negative ones from their minimum to their maximum."""
    low, high = float(values.min()), float(values.max())
    if low < 0:
        limit = max(-low, high)
        return {"cmap": "bwr", "vmin": -limit, "vmax": limit}
    return {"cmap": "inferno", "vmin": low, "vmax": high if high > low else low + 1.0}


def draw_grid(images: torch.Tensor, maps: dict[str, torch.Tensor], titles: list[str], path: Path) -> None:
    """One row per image: the image, then each method's map over it, each on its own colour scale for
    display only (the numbers are not changed): a signed map red (+) and blue (-) up to its largest
    |value|, a non-negative one (CAMs, RISE's probabilities, masks) from its minimum to its maximum, so
    that a constant offset (RISE's) does not turn the whole map one colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = len(images), 1 + len(maps)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
    for r in range(rows):
        picture = images[r].permute(1, 2, 0).numpy()
        axes[r, 0].imshow(picture)
        axes[r, 0].set_title(titles[r], fontsize=8)
        for c, (name, method_maps) in enumerate(maps.items(), start=1):
            values = method_maps[r].numpy()
            axes[r, c].imshow(picture.mean(2), cmap="gray", alpha=0.5)
            axes[r, c].imshow(values, alpha=0.6, **display_scale(values))
            if r == 0:
                axes[r, c].set_title(name, fontsize=8)
    for axis in axes.flat:
        axis.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse names the option and the value when it is not)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_image_output(path: Path) -> None:
    """SystemExit naming ``--out`` when it is a folder or its suffix is no image format matplotlib writes
    (without a suffix matplotlib would append '.png' and the grid land under another name)."""
    from matplotlib.figure import Figure

    formats = sorted(Figure().canvas.get_supported_filetypes())
    if path.is_dir():
        raise SystemExit(f"--out {path}: is a folder; name an image file, e.g. {path / 'explain.png'}")
    if path.suffix.lower().lstrip(".") not in formats:
        raise SystemExit(f"--out {path}: the suffix '{path.suffix}' is not an image format; use one of "
                         f"{', '.join('.' + f for f in formats)}")


def explain_command(args: argparse.Namespace) -> None:
    """Run the chosen methods on the images and write the grid; warnings on stderr, errors as one line."""
    check_image_output(Path(args.out))
    try:
        loaded = load_any_model(args.model, random_weights=args.random_weights)
    except CorruptFileError as error:  # its message is about the workflow's own results
        raise SystemExit(f"--model {args.model}: not a readable robustxai checkpoint ({error.reason}); give one the "
                         "workflow wrote, e.g. results/models/<model>.pt, or a timm model name") from None
    except (ValueError, FileNotFoundError, IsADirectoryError) as error:
        raise SystemExit(f"--model {args.model}: {error}") from None
    except OSError as error:  # timm's download (no connection, no such weights on the hub)
        raise SystemExit(f"--model {args.model}: timm's weights could not be downloaded ({error}); --random-weights "
                         "tries the command without them") from None
    size = args.size or loaded.input_size or 224
    try:
        images, names, short_sides = load_images(Path(args.images), size)
    except (ValueError, FileNotFoundError) as error:  # unreadable images name their file
        raise SystemExit(str(error)) from None
    for warning in size_warnings(loaded, size, args.size is not None, names, short_sides):
        print(f"warning: {warning}", file=sys.stderr)
    with torch.no_grad():
        probs = loaded.model(images).softmax(1)
    predicted = probs.argmax(1)
    if args.target is not None and not 0 <= args.target < probs.shape[1]:
        raise SystemExit(f"--target {args.target}: {args.model} has classes 0..{probs.shape[1] - 1}")
    targets = predicted if args.target is None else torch.full_like(predicted, args.target)
    maps = {}
    for name in args.methods:
        try:
            maps[name] = make_method(name, batch_size="auto").explain(loaded.model, images, targets).detach()
        except ValueError as error:  # e.g. explainer on a model without the branch
            raise SystemExit(f"--methods {name}: {error}") from None
    titles = [f"{n}\n{loaded.label(int(p))} ({probs[i, p]:.2f})" for i, (n, p) in enumerate(zip(names, predicted))]
    draw_grid(images, maps, titles, Path(args.out))
    print(f"{loaded.source}: {len(images)} image(s) at {size} px x {len(maps)} method(s) -> {args.out}")
    for i, (name, p) in enumerate(zip(names, predicted)):
        print(f"  {name}: {loaded.label(int(p))} ({probs[i, p]:.2f})")


def shell_path(path: str | Path) -> str:
    """``path`` as a shell word in a printed command: relative to the working directory when inside it
    (the workflow's rules name their outputs so; an absolute one matches no rule), quoted when needed."""
    import os
    import shlex

    absolute = Path(path).absolute()
    inside = Path.cwd() in absolute.parents
    return shlex.quote(os.path.relpath(absolute) if inside else str(path))


def verify_command(args: argparse.Namespace) -> int:
    """Print one line per corrupt or leftover file, a summary and the command that regenerates the corrupt
    ones; 1 when a corrupt file was found, else 0."""
    from robustxai.pipeline.verify import (CORRUPT, LEFTOVER, QUARANTINE, UNKNOWN, UNVERIFIED, rerun_target,
                                           verify_results)

    try:
        checks = verify_results(args.results, fix=args.fix)
    except NotADirectoryError as error:
        raise SystemExit(str(error)) from None
    count = {status: sum(c.status == status for c in checks) for status in (CORRUPT, LEFTOVER, UNVERIFIED, UNKNOWN)}
    for check in checks:
        if check.status in (CORRUPT, LEFTOVER):
            moved = f"moved to {Path(args.results) / QUARANTINE}" if args.fix else check.status
            print(f"{moved}: {check.path} ({check.reason})")
        elif check.status == UNKNOWN:
            print(f"unknown: {check.path} ({check.reason})")
        elif check.status == UNVERIFIED:
            print(f"not verifiable: {check.path} ({check.reason})")
    print(f"checked {len(checks)} files under {args.results}: {count[CORRUPT]} corrupt, {count[LEFTOVER]} leftover "
          f"temporary, {count[UNVERIFIED]} written before checksums (not verifiable), {count[UNKNOWN]} not written "
          "by the workflow (kept)")
    if count[CORRUPT]:
        # a removed file that no job of a plain run needs (e.g. a checkpoint) is regenerated only when forced
        targets = dict.fromkeys(rerun_target(c.path, Path(args.results)) for c in checks if c.status == CORRUPT)
        forcerun = "snakemake --forcerun " + " ".join(shell_path(target) for target in targets)
        print(("to regenerate them" if args.fix else f"to regenerate them: robustxai verify {shell_path(args.results)} --fix, "
               "then") + f", with your usual options: {forcerun}")
    return 1 if count[CORRUPT] else 0


def tidy_report_command(args) -> int:
    """``robustxai tidy-report``: one node per rule in a report's rule graph; 1 with a one-line error when the
    file is missing or not a Snakemake report."""
    from robustxai.aggregation.report_graph import tidy_report

    try:
        before, after = tidy_report(args.report)
    except (OSError, ValueError) as error:
        print(f"robustxai tidy-report: {error}", file=sys.stderr)
        return 1
    print(f"{args.report}: rule graph of {before} nodes now has {after}, one per rule")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``robustxai`` command."""
    parser = argparse.ArgumentParser(prog="robustxai", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser("explain", help="draw attribution maps of a model for an image or folder")
    explain.add_argument("--model", required=True, help="a checkpoint (results/models/<model>.pt: trained, fetched "
                         "or imported) or a timm model name (e.g. resnet50.a1_in1k: timm's pretrained weights)")
    explain.add_argument("--random-weights", action="store_true", help="with a timm name: random weights, nothing "
                         "downloaded (to try the command offline)")
    explain.add_argument("--images", required=True, help="an image file or a folder of images")
    explain.add_argument("--methods", nargs="+", default=["gradient", "gradcam"], choices=CLI_METHODS,
                         metavar="METHOD", help=f"default: gradient gradcam; any of {', '.join(CLI_METHODS)} "
                         "(explainer: on models with an explainer branch)")
    explain.add_argument("--size", type=positive_int, default=None, help="short side resized to SIZE, then "
                         "centre-cropped to SIZE x SIZE, as the study's datasets are (default: the input size the "
                         "model's weights were made for)")
    explain.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted one)")
    explain.add_argument("--out", default="explain.png", help="output PNG (default explain.png)")
    verify = commands.add_parser("verify", help="check the checksums of a results folder's shards, tables and "
                                 "checkpoints; exit status 1 when one is corrupt")
    verify.add_argument("results", help="the results folder as the config's `results` names it, e.g. results (run "
                        "from the workflow's directory: the printed snakemake command names files so)")
    verify.add_argument("--fix", action="store_true", help="remove the corrupt and leftover temporary files (when no "
                        "workflow runs); the printed snakemake --forcerun command then regenerates them")
    tidy = commands.add_parser("tidy-report", help="draw each rule once in the rule graph of a report made by "
                               "snakemake --report (Snakemake repeats a rule whose jobs sit at several levels)")
    tidy.add_argument("report", help="the report's HTML file, e.g. results/report.html (rewritten in place)")
    args = parser.parse_args(argv)
    if args.command == "verify":
        raise SystemExit(verify_command(args))
    if args.command == "tidy-report":
        raise SystemExit(tidy_report_command(args))
    explain_command(args)


if __name__ == "__main__":
    main(sys.argv[1:])
