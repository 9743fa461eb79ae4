"""Explain one shard of a split with one method for one model, and write it as an HDF5 shard."""
from __future__ import annotations

import logging
import time

import numpy as np
import torch
from tqdm import tqdm

from robustxai.attribution import AttributionMethod, make_method
from robustxai.attribution.shards import AttributionShard, write_shard
from robustxai.config import method_name as registered_name
from robustxai.config import method_settings
from robustxai.data.download import file_digest
from robustxai.data.splits import load_split, split_size
from robustxai.models.checkpoint import load_checkpoint
from robustxai.models.inference import default_device, predict_logits
from robustxai.provenance import provenance
from robustxai.tuning import adopt_fastest_layout, current_mode

log = logging.getLogger(__name__)


def shard_indices(total: int, shard: int, images_per_shard: int) -> np.ndarray:
    """Image ids of shard ``shard``: [shard * images_per_shard, (shard + 1) * images_per_shard) ∩ [0, total);
    a shard past the split's end raises ValueError naming the config keys."""
    start = shard * images_per_shard
    if start >= total:
        raise ValueError(f"shard {shard} of {images_per_shard} images starts past the split's {total} images: "
                         "lower attribution.shards or attribution.images_per_shard")
    return np.arange(start, min(start + images_per_shard, total))


def configured_method(method_name: str, settings: dict) -> tuple[str, AttributionMethod]:
    """(registered name, method) of a config entry ``method_name: settings``: ``settings`` may name
    the registered method under ``method``; the batch size is tuned ("auto") unless they give one."""
    registered = registered_name(method_name, settings)
    own = {k: v for k, v in method_settings(settings).items() if k != "method"}
    return registered, make_method(registered, **{"batch_size": "auto", **own})


def explain_in_batches(method: AttributionMethod, model: torch.nn.Module, images: torch.Tensor,
                       targets: torch.Tensor, images_per_batch: int, device: torch.device) -> torch.Tensor:
    """Maps (N, H, W) on the CPU, ``images_per_batch`` images per call of the method, with a progress
    bar; on a CUDA out-of-memory error the batch (and the method's own batch size) is halved and retried."""
    maps, start = [], 0
    with tqdm(total=len(images), desc=type(method).__name__, unit="img", mininterval=5.0) as bar:
        while start < len(images):
            stop = min(start + images_per_batch, len(images))
            try:
                maps.append(method.explain(model, images[start:stop].to(device), targets[start:stop].to(device))
                            .detach().float().cpu())
            except torch.cuda.OutOfMemoryError:
                if images_per_batch == 1 and method.batch_size == 1:
                    raise
                torch.cuda.empty_cache()
                images_per_batch, method.batch_size = max(1, images_per_batch // 2), max(1, method.batch_size // 2)
                log.warning("out of memory: retrying with %d images per batch, method batch size %d",
                            images_per_batch, method.batch_size)
                continue
            bar.update(stop - start)
            start = stop
    return torch.cat(maps) if maps else torch.empty(0, *images.shape[-2:])


def bind_needed_models(method: AttributionMethod, settings: dict, model_paths: dict[str, str],
                       image_shape: tuple[int, ...], device: torch.device, images: int | None = None) -> None:
    """Load the checkpoints of the other models the method's ``settings`` name (``needed_models``;
    ``model_paths``: setting name -> checkpoint path), each on ``device`` in its fastest memory layout
    for a job of ``images`` images (None: always measured; ``robustxai.tuning.adopt_fastest_layout``),
    and bind them to the method."""
    missing = sorted(set(type(method).needed_models(settings)) - set(model_paths))
    if missing:
        raise ValueError(f"{type(method).__name__} needs the checkpoints of the models named by {missing}")
    models = {}
    for key, path in model_paths.items():
        models[key] = load_checkpoint(path)[0].to(device)
        adopt_fastest_layout(models[key], image_shape, method.pass_kind, device,
                             expected_inputs=None if images is None else images * method.inputs_per_image(image_shape))
    method.bind_models(models)


def attribute_shard_job(checkpoint_path: str, split_path: str, method_name: str, settings: dict, shard: int,
                        images_per_shard: int, images_per_batch: int, output_path: str, target: str = "predicted",
                        dtype: str = "float32", model_paths: dict[str, str] | None = None) -> AttributionShard:
    """Explain images of one shard of a split; ``target`` is "predicted" (the model's class) or "label".
    The method's batch size is tuned on the device ("auto") unless ``settings`` give one, and the
    model runs in whichever memory layout is faster there, both within the bounds of
    ``robustxai.tuning`` and as its mode ("auto" or "off") says; all three are recorded in the shard.

    ``settings`` may name the registered method under ``method`` (else ``method_name`` is it);
    ``model_paths`` are the checkpoints of the other models the method needs (setting name -> path,
    e.g. robust_counterpart's counterpart).
    """
    device = default_device()
    model, _ = load_checkpoint(checkpoint_path)
    model = model.to(device)
    index = shard_indices(split_size(split_path), shard, images_per_shard)
    images, labels = load_split(split_path, index).tensors()  # only this shard's images are read
    logits = predict_logits(model, images, images_per_batch, device=device)  # memory bounded by the batch
    predicted = logits.argmax(1)
    targets = predicted if target == "predicted" else labels
    registered, method = configured_method(method_name, settings)
    image_shape = tuple(images.shape[1:])
    bind_needed_models(method, settings, model_paths or {}, image_shape, device, images=len(index))
    layout = adopt_fastest_layout(model, image_shape, method.pass_kind, device,
                                  batch_size=min(64, images_per_batch),  # timed at most at the job's batch
                                  expected_inputs=len(index) * method.inputs_per_image(image_shape))
    method.tune(model, image_shape, device, len(index))  # the batch size, for the whole shard at once
    started = time.time()
    maps = explain_in_batches(method, model, images, targets, images_per_batch, device)
    wall = time.time() - started
    extras = method.per_image_extras()
    summary = {f"{name}_rate": float(np.mean(values)) for name, values in extras.items() if values.dtype == bool}
    shard_data = AttributionShard(
        maps=maps.numpy(), index=index, target=targets.numpy(), predicted=predicted.numpy(),
        probs=logits.softmax(1).numpy(),
        attrs={"method": method_name, "registered_method": registered, "settings": settings,
               "channel_rule": method.channel_rule, "target_kind": target, "checkpoint_sha256": file_digest(checkpoint_path),
               "seed": int(settings.get("seed", 0)), "batch_size": method.batch_size, "memory_layout": layout,
               "tuning": current_mode(),
               "wall_seconds": wall,
               "images_per_second": len(index) / wall if wall > 0 else float("inf"),
               "provenance": provenance(), **summary}, extras=extras)
    write_shard(shard_data, output_path, dtype)
    log.info("%s: %d images in %.2f s (%.1f images/s)", method_name, len(index), wall,
             shard_data.attrs["images_per_second"])
    return shard_data
