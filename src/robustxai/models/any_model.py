"""A model to explain outside a study, named as a user would name it: a checkpoint file (the workflow's
own, trained, fetched from timm or imported) or a timm model name, with the input size its weights were
made for and its class names where they are known."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustxai.models.checkpoint import load_checkpoint
from robustxai.models.preprocessing import native_input_size
from robustxai.models.wrapper import ImageClassifier, build_classifier, is_timm_name

#: ImageNet-1k's class count: checkpoints of that many classes are labelled in its order (timm's, the zoo's)
IMAGENET_CLASSES = 1000


@dataclass
class AnyModel:
    """``model`` (eval mode, [0, 1] images in), ``input_size``: the side (px) its weights were made for
    (None: unknown), ``class_names``: one per output (None: unknown, shown as indices), ``source``: what
    was loaded, in words."""

    model: ImageClassifier
    input_size: int | None
    class_names: list[str] | None
    source: str

    def label(self, index: int) -> str:
        """Class ``index``'s name, else "class <index>"."""
        return self.class_names[index] if self.class_names else f"class {index}"


def imagenet_class_names(subset: str = "imagenet-1k") -> list[str]:
    """ImageNet's class names in index order (1000 for imagenet-1k), each the first of its synonyms
    ("tench", not "tench, Tinca tinca"): timm's ``ImageNetInfo``, shipped with timm."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo(subset)
    return [info.index_to_description(index).split(",")[0] for index in range(info.num_classes())]


def load_any_model(spec: str, random_weights: bool = False) -> AnyModel:
    """The model ``spec`` names: an existing file is read as a robustxai checkpoint (its recorded input size
    and class names; 1000-class models get ImageNet's names), else a timm model name (e.g. ``resnet50.a1_in1k``)
    is built with timm's pretrained weights, downloaded from the hub (``random_weights``: none, to try a
    command offline), their mean / std, input size and class names. ValueError when ``spec`` is neither;
    errors of reading or downloading pass through."""
    path = Path(spec)
    if path.exists():
        model, payload = load_checkpoint(path)
        meta = payload.get("meta", {})
        entry = meta.get("entry", {})
        names = meta.get("class_names") or (imagenet_class_names() if payload["num_classes"] == IMAGENET_CLASSES else None)
        return AnyModel(model, native_input_size(meta, entry.get("image_size")), names,
                        f"checkpoint {path} ({payload['arch']}, {meta.get('source', 'unknown source')})")
    if not is_timm_name(spec):
        raise ValueError(f"'{spec}' is neither a file nor a timm model name (e.g. resnet50.a1_in1k; "
                         "python -c \"import timm; print(timm.list_models('resnet*', pretrained=True))\" lists them)")
    import timm

    config = timm.models.get_pretrained_cfg(spec)  # of the name's tag, else the architecture's default weights
    classes = config.num_classes or IMAGENET_CLASSES
    if random_weights:
        model = build_classifier(spec, classes, config.mean, config.std)
    else:
        model = build_classifier(spec, classes, pretrained=True)  # the weights' own mean and std
    subset = timm.data.infer_imagenet_subset(model.net)  # imagenet-1k / -22k labels, None for other data
    weights = "random weights" if random_weights else "timm's pretrained weights"
    return AnyModel(model.eval(), int(config.input_size[-1]), imagenet_class_names(subset) if subset else None,
                    f"timm {spec} ({weights})")
