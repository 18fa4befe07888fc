"""A user's JSON Schema turned into a pydantic model, so every reply is checked by pydantic.

Covers the part of JSON Schema that describes data shapes (types, required, enums, bounds, arrays,
nested objects, local $refs, anyOf). A keyword outside it is an error at load time: a schema that
looks enforced but is not would let bad items through quietly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WrapValidator, create_model

from stillroom.errors import UsageError

_ANNOTATIONS = {"title", "description", "examples", "default", "$schema", "$id", "$comment", "$defs", "definitions",
                "format", "readOnly", "writeOnly", "deprecated"}
_CHECKED = {"type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "oneOf",
            "$ref", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
            "minItems", "maxItems", "multipleOf"}
_SCALARS: dict[str, Any] = {"string": str, "integer": int, "boolean": bool, "null": type(None)}  # "number": see _keep_int
_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt", "minLength": "min_length",
           "maxLength": "max_length", "pattern": "pattern", "minItems": "min_length", "maxItems": "max_length",
           "multipleOf": "multiple_of"}


def model_from_schema(schema: dict, name: str = "Answer") -> type[BaseModel]:
    """The schema's root must be an object; its fields become the model's fields."""
    if schema.get("type") != "object":
        raise UsageError(f"JSON Schema for {name}: the root must have \"type\": \"object\"")
    return _Builder(schema).object_model(schema, name)


class _Builder:
    def __init__(self, root: dict) -> None:
        self.root = root

    def annotation(self, node: Any, name: str) -> tuple[Any, dict]:
        """(python type, Field constraints) for one schema node."""
        if not isinstance(node, dict):
            raise UsageError(f"JSON Schema at {name}: expected an object, got {node!r}")
        unknown = set(node) - _ANNOTATIONS - _CHECKED
        if unknown:
            raise UsageError(f"JSON Schema at {name}: {', '.join(sorted(unknown))} is not supported — "
                             f"stillroom checks only: {', '.join(sorted(_CHECKED))}")
        bounds = {_BOUNDS[k]: v for k, v in node.items() if k in _BOUNDS}
        if "$ref" in node:
            return self.annotation(self.resolve(node["$ref"], name), name)[0], bounds
        if "const" in node:
            return Literal[node["const"]], {}
        if "enum" in node:
            return Literal[tuple(node["enum"])], {}
        if "anyOf" in node or "oneOf" in node:
            options = [self.annotation(sub, f"{name}[{i}]")[0] for i, sub in enumerate(node.get("anyOf") or node["oneOf"])]
            return Union[tuple(options)], bounds
        types = node.get("type")
        if isinstance(types, list):
            options = [self.annotation({**node, "type": t}, name)[0] for t in types]
            return Union[tuple(options)], bounds
        if types == "object":
            return self.object_model(node, name), {}
        if types == "array":
            inner = self.annotation(node.get("items", {"type": "string"}), f"{name}[]")
            return list[_constrained(*inner)], bounds
        if types == "number":  # bounds inside, so they are checked before _keep_int sees the value
            return Annotated[float, Field(**bounds), WrapValidator(_keep_int), PlainSerializer(_as_is)], {}
        if types in _SCALARS:
            return _SCALARS[types], bounds
        raise UsageError(f"JSON Schema at {name}: unknown or missing \"type\" ({types!r})")

    def object_model(self, node: dict, name: str) -> type[BaseModel]:
        required = set(node.get("required", []))
        fields: dict[str, Any] = {}
        for key, sub in node.get("properties", {}).items():
            ann, bounds = self.annotation(sub, f"{name}.{key}")
            desc = sub.get("description") if isinstance(sub, dict) else None
            if key in required:
                fields[key] = (ann, Field(..., description=desc, **bounds))
            else:
                fields[key] = (Optional[ann], Field(None, description=desc, **bounds))
        extra = "forbid" if node.get("additionalProperties") is False else "allow"
        return create_model(_identifier(name), __config__=ConfigDict(extra=extra), **fields)

    def resolve(self, ref: str, name: str) -> dict:
        node: Any = self.root
        if not ref.startswith("#/"):
            raise UsageError(f"JSON Schema at {name}: only local $refs (#/...) are supported, got {ref!r}")
        for part in ref[2:].split("/"):
            if not isinstance(node, dict) or part not in node:
                raise UsageError(f"JSON Schema at {name}: $ref {ref!r} points nowhere")
            node = node[part]
        return node


def _constrained(ann: Any, bounds: dict) -> Any:
    if not bounds:
        return ann
    return Annotated[ann, Field(**bounds)]


def _identifier(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name) or "Model"


def _keep_int(value: Any, handler: Any) -> Any:
    """JSON Schema's "number" holds integers too: 915 as the model wrote it stays 915 (a plain float field
    would export 915.0), once the float check and its bounds have passed; 915.0 stays 915.0."""
    checked = handler(value)
    return value if type(value) is int else checked


def _as_is(value: float | int) -> float | int:
    return value
