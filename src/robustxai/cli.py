"""Command line: ``robustxai explain`` draws attribution maps for a few images before a full study;
``robustxai verify`` checks a study's result files and lists (``--fix``: removes) the corrupt ones.

    robustxai explain --model results/models/vgg_tiny-vanilla.pt --images digit.png \\
        --methods gradient gradcam rise --out grid.png
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
from robustxai.models import load_checkpoint


def load_images(path: Path, size: int) -> tuple[torch.Tensor, list[str]]:
    """Images (N, 3, size, size) in [0, 1] from one file or every image file in a folder (sorted), each
    preprocessed as the study's image datasets are: short side resized to ``size``, then centre-cropped."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    arrays = [resize_crop(read_rgb(file), size)[0] for file in files]
    images = torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    return images, [f.name for f in files]


def draw_grid(images: torch.Tensor, maps: dict[str, torch.Tensor], titles: list[str], path: Path) -> None:
    """One row per image: the image, then each method's map over it. Colours are signed (red +, blue -)
    and scaled per map to its largest |value| for display only; the numbers are not changed."""
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
            limit = float(np.abs(values).max()) or 1.0
            axes[r, c].imshow(picture.mean(2), cmap="gray", alpha=0.5)
            axes[r, c].imshow(values, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.6)
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
    """Run the chosen methods on the images and write the grid."""
    check_image_output(Path(args.out))
    try:
        model, payload = load_checkpoint(args.model)
    except CorruptFileError as error:  # its message is about the workflow's own results
        raise SystemExit(f"--model {args.model}: not a readable robustxai checkpoint ({error.reason}); give one the "
                         "workflow wrote, e.g. results/models/<model>.pt") from None
    except (ValueError, FileNotFoundError, IsADirectoryError) as error:
        raise SystemExit(f"--model {args.model}: {error}") from None
    try:
        images, names = load_images(Path(args.images), args.size)
    except (ValueError, FileNotFoundError) as error:  # unreadable images name their file
        raise SystemExit(str(error)) from None
    with torch.no_grad():
        probs = model(images).softmax(1)
    predicted = probs.argmax(1)
    if args.target is not None and not 0 <= args.target < probs.shape[1]:
        raise SystemExit(f"--target {args.target}: {args.model} has classes 0..{probs.shape[1] - 1}")
    targets = predicted if args.target is None else torch.full_like(predicted, args.target)
    maps = {name: make_method(name, batch_size="auto").explain(model, images, targets).detach() for name in args.methods}
    titles = [f"{n}\npred {int(p)} ({probs[i, p]:.2f})" for i, (n, p) in enumerate(zip(names, predicted))]
    draw_grid(images, maps, titles, Path(args.out))
    print(f"{len(images)} image(s) x {len(maps)} method(s) -> {args.out}")


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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``robustxai`` command."""
    parser = argparse.ArgumentParser(prog="robustxai", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser("explain", help="draw attribution maps of a model for an image or folder")
    explain.add_argument("--model", required=True, help="a robustxai checkpoint (results/models/<model>.pt)")
    explain.add_argument("--images", required=True, help="an image file or a folder of images")
    explain.add_argument("--methods", nargs="+", default=["gradient", "gradcam"], choices=sorted(METHODS),
                         metavar="METHOD", help=f"default: gradient gradcam; any of {', '.join(sorted(METHODS))}")
    explain.add_argument("--size", type=positive_int, default=32, help="short side resized to SIZE, then centre-cropped "
                         "to SIZE x SIZE, as the study's datasets are (default 32)")
    explain.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted one)")
    explain.add_argument("--out", default="explain.png", help="output PNG (default explain.png)")
    verify = commands.add_parser("verify", help="check the checksums of a results folder's shards, tables and "
                                 "checkpoints; exit status 1 when one is corrupt")
    verify.add_argument("results", help="the results folder as the config's `results` names it, e.g. results (run "
                        "from the workflow's directory: the printed snakemake command names files so)")
    verify.add_argument("--fix", action="store_true", help="remove the corrupt and leftover temporary files (when no "
                        "workflow runs); the printed snakemake --forcerun command then regenerates them")
    args = parser.parse_args(argv)
    if args.command == "verify":
        raise SystemExit(verify_command(args))
    explain_command(args)


if __name__ == "__main__":
    main(sys.argv[1:])
