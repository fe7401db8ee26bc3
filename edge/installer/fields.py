"""The device config model read as a map of fields: which keys are valid at a place, and what they mean.

``config check`` names the closest valid key for an unknown one and explains a missing one from the
model's own titles and descriptions, so the model stays the one source of truth.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edge.config import DeviceConfig


def members(annotation: Any) -> list[Any]:
    """An annotation with Annotated and unions taken apart."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in members(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tag_of(model: type[BaseModel]) -> tuple[str, Any] | None:
    for name in ("kind", "type", "method"):
        field = model.model_fields.get(name)
        if field is not None and typing.get_origin(field.annotation) is Literal:
            return name, typing.get_args(field.annotation)
    return None


def _pick(candidates: list[Any], value: Any) -> list[Any]:
    """The union members the value's tag (kind/type/method) selects; all of them when none matches."""
    models = [c for c in candidates if _is_model(c)]
    if isinstance(value, dict) and len(models) > 1:
        chosen = []
        for model in models:
            tag = _tag_of(model)
            if tag is not None and value.get(tag[0]) in tag[1]:
                chosen.append(model)
        if chosen:
            return chosen
    return candidates


def annotations_at(data: Any, path: Sequence[str | int]) -> list[Any]:
    """The annotations the model allows at ``path`` of the document ``data``."""
    current = _pick(members(DeviceConfig), data)
    node = data
    for part in path:
        following: list[Any] = []
        for annotation in current:
            if isinstance(part, int):
                origin = typing.get_origin(annotation)
                if origin in (list, tuple):
                    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
                    if origin is tuple and len(args) > 1 and part < len(args):
                        args = [args[part]]
                    following += [m for a in args for m in members(a)]
            elif _is_model(annotation) and part in annotation.model_fields:
                following += members(annotation.model_fields[part].annotation)
            elif typing.get_origin(annotation) is dict:
                following += members(typing.get_args(annotation)[1])
        node = node.get(part) if isinstance(node, dict) else node[part] if _indexable(node, part) else None
        current = _pick(following, node)
    return current


def _indexable(node: Any, part: str | int) -> bool:
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def valid_keys(data: Any, path: Sequence[str | int]) -> list[str]:
    """The keys the model allows in the mapping at ``path`` (empty: not a mapping of fields)."""
    keys: dict[str, None] = {}
    for annotation in annotations_at(data, path):
        if _is_model(annotation):
            keys.update(dict.fromkeys(annotation.model_fields))
    return list(keys)


def field_info(data: Any, path: Sequence[str | int]) -> FieldInfo | None:
    """The model's field at ``path`` (its title and description), when one model defines it."""
    if not path or isinstance(path[-1], int):
        return None
    for annotation in annotations_at(data, path[:-1]):
        if _is_model(annotation) and path[-1] in annotation.model_fields:
            field: FieldInfo = annotation.model_fields[str(path[-1])]
            return field
    return None
