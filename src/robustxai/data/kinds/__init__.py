"""Dataset kinds: a registry from ``dataset.kind`` config names to :class:`DatasetKind` classes.

``dataset_kind(name)`` answers a kind's split names, class count, split sizes and archive, and builds
its splits (interface in ``base``). Adding a kind is one module plus one line in ``DATASET_KINDS``.
Kind modules are imported when a kind is asked for, so the built-in study does not import the
readers of the others.
"""
from __future__ import annotations

from robustxai.data.kinds.base import DatasetKind, missing_inputs_message, missing_local_inputs
from robustxai.registry import registered_class

#: config name -> "module:Class" within this package
DATASET_KINDS: dict[str, str] = {
    "builtin": "builtin:Builtin",
    "cifar10": "cifar10:Cifar10",
    "imagefolder": "imagefolder:ImageFolder",
    "tinyimagenet": "tinyimagenet:TinyImageNet",
}


def dataset_kind(name: str) -> DatasetKind:
    """The kind registered as ``name`` (imports its module); unknown names raise ValueError naming the known."""
    return registered_class(DATASET_KINDS, __name__, "dataset kind", name)()


__all__ = ["DATASET_KINDS", "DatasetKind", "dataset_kind", "missing_inputs_message", "missing_local_inputs"]
