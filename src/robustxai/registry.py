"""Lazy name -> class registries (attribution methods, metrics): a class's module is imported only
when that class is asked for, so a job pays only for the imports of what it runs."""
from __future__ import annotations

import importlib
import inspect


def registered_class(table: dict[str, str], package: str, kind: str, name: str) -> type:
    """The class ``table[name]`` ("module:Class" within ``package``) names; unknown names raise a
    ValueError listing the known ``kind`` names."""
    if name not in table:
        raise ValueError(f"unknown {kind} '{name}', expected one of {sorted(table)}")
    module, cls = table[name].split(":")
    return getattr(importlib.import_module(f"{package}.{module}"), cls)


def build(cls: type, kind: str, name: str, settings: dict):
    """``cls(**settings)``; an unknown or wrong setting raises a ValueError naming the ``kind`` and
    ``name`` (and, for an unknown one, the settings ``cls`` takes)."""
    parameters = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(settings) - set(parameters))
        if unknown:
            raise ValueError(f"{kind} '{name}': unknown setting(s) {unknown}; allowed: {sorted(parameters)}")
    for key, value in settings.items():
        parameter = parameters.get(key)
        if parameter is not None and _text_for_a_number(value, parameter):
            raise ValueError(f"{kind} '{name}': setting '{key}' is {value!r} ({type(value).__name__}), but it takes a "
                             f"number like its default {parameter.default!r}")
    try:
        return cls(**settings)
    except TypeError as error:
        raise ValueError(f"{kind} '{name}': {error}") from error


def _text_for_a_number(value, parameter: inspect.Parameter) -> bool:
    """Whether ``value`` is text or a bool given to a numeric setting (a number default, no ``str`` in its
    annotation, unlike ``batch_size: int | str`` that takes "auto"): YAML's ``steps: "8"`` would otherwise
    fail deep inside the class with "'<' not supported between 'str' and 'int'"."""
    default = parameter.default
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if not numeric or not isinstance(value, (str, bool)):
        return False
    return isinstance(value, bool) or "str" not in str(parameter.annotation)
