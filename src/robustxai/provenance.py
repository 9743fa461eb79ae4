"""Provenance recorded with every artefact: package versions, host, time."""
from __future__ import annotations

import datetime
import platform
from importlib import metadata

PACKAGES = ("robustxai", "torch", "torchvision", "timm", "numpy")


def provenance() -> dict:
    """Versions of the packages that shape results, the Python version, host name and UTC time."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"versions": versions, "python": platform.python_version(), "host": platform.node(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
