"""Dagster config classes derived from the lib's dataclasses, so each field, default and description is defined once."""

import dataclasses
import typing
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

D = TypeVar("D")


def _annotation(source: type, name: str) -> Any:
    return typing.get_type_hints(source)[name]


def _is_tuple(annotation: Any) -> bool:
    return typing.get_origin(annotation) is tuple


def config_fields(source: type, exclude: Collection[str] = ()) -> dict[str, Any]:
    """`create_model` field definitions of the dataclass `source`: each field's type, default and the
    `description` of its metadata. Dagster config has no tuple type: `tuple[T, ...]` becomes `list[T]`."""
    definitions: dict[str, Any] = {}
    for spec in dataclasses.fields(source):
        if spec.name in exclude:
            continue
        annotation = _annotation(source, spec.name)
        if dataclasses.is_dataclass(annotation):
            raise TypeError(f"{source.__name__}.{spec.name}: a nested dataclass is not a config field; exclude it")
        if spec.default is not dataclasses.MISSING:
            default = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        else:
            raise TypeError(f"{source.__name__}.{spec.name}: a config field needs a default")
        if _is_tuple(annotation):
            args = typing.get_args(annotation)
            if len(args) != 2 or args[1] is not Ellipsis:
                raise TypeError(f"{source.__name__}.{spec.name}: only tuple[T, ...] maps to a config list")
            annotation, default = list[args[0]], list(default)  # type: ignore[valid-type]
        definitions[spec.name] = (annotation, Field(default=default, description=spec.metadata.get("description")))
    return definitions


def from_config(target: type[D], config: dg.Config, **values: Any) -> D:
    """The dataclass `target` from the config fields named like its fields (lists back to tuples), plus
    `values` for the fields the config does not hold; fields found in neither keep their defaults."""
    held: Mapping[str, Any] = config.model_dump()
    kwargs = dict(values)
    for spec in dataclasses.fields(target):  # type: ignore[arg-type]
        if spec.name in held and spec.name not in kwargs:
            value = held[spec.name]
            kwargs[spec.name] = tuple(value) if _is_tuple(_annotation(target, spec.name)) else value
    return target(**kwargs)
