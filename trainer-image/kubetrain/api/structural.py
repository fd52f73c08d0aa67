"""Rewrite pydantic's JSON schema into a Kubernetes structural OpenAPI v3 schema.

Input: ``Model.model_json_schema(by_alias=True, mode="validation")``. Output: a schema the API
server accepts in a CRD (see docs on structural schemas and /work/shared/design/crd-schema.md).

Refused with a ``ValueError`` naming the JSON path: recursive models, ``oneOf``/discriminated
unions, unions that are not ``X | None``, ``int | str`` or same-typed ``Literal``s, nodes without a
type, tuples whose items differ, and defaults that the schema itself would reject.

Dropped on purpose: ``title`` (noise in ``kubectl explain``), ``additionalProperties: false`` (the
API server prunes unknown fields anyway), null defaults, formats the API server does not validate
the way pydantic does, ``uniqueItems`` (the API server rejects ``uniqueItems: true``; use
``json_schema_extra={"x-kubernetes-list-type": "set"}`` for scalar lists that must be unique), and
the members' own constraints in ``int | str`` unions: ``int | Literal["auto"]`` becomes plain
int-or-string, so restate such constraints as CEL rules.

Pure and stdlib-only, so that it imports without pydantic or torch.
"""

from __future__ import annotations

import copy
from typing import Any

Schema = dict[str, Any]

_DEFS_PREFIX = "#/$defs/"
# Formats that mean the same to the API server as to pydantic; others ("uri", "path",
# "duration" (Go syntax there, ISO 8601 here), ...) would validate differently or not at all.
_KEPT_FORMATS = frozenset({"int32", "int64", "float", "double", "date-time", "byte"})
_DROPPED_KEYS = frozenset(
    [
        "title",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$schema",
        "$comment",
        "uniqueItems",
    ]
)
_COPIED_KEYS = frozenset(
    [
        "description",
        "enum",
        "minimum",
        "maximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
        "nullable",
    ]
)
_UNTYPED_MARKERS = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
# Readable order for `kubectl explain` and diffs: what a node is, then its constraints, then
# its children; anything else (x-kubernetes-validations, ...) sorted at the end.
_KEY_ORDER = (
    "type",
    *_UNTYPED_MARKERS,
    "description",
    "nullable",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "items",
    "additionalProperties",
    "properties",
)
_UNION_HINT = (
    "structural schemas cannot express unions of objects; use a 'type' field + optional "
    "members + a CEL rule in x-kubernetes-validations instead"
)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def to_structural(schema: Schema) -> Schema:
    """Return the structural equivalent of a pydantic model's JSON schema (input untouched)."""
    root = {key: value for key, value in schema.items() if key != "$defs"}
    return _Converter(schema.get("$defs", {})).convert(root, "$", ())


class _Converter:
    """Holds the `$defs` that `$ref`s point into; every method returns new dicts."""

    def __init__(self, defs: dict[str, Schema]) -> None:
        self.defs = defs

    def convert(self, node: Schema, path: str, stack: tuple[str, ...]) -> Schema:
        """Convert one node and check that the result is structural."""
        if not isinstance(node, dict):
            raise ValueError(f"{path}: expected a schema object, got {node!r}")
        out = self._rewrite(node, path, stack)
        if "enum" in out and "type" not in out and not _is_untyped(out):
            _infer_enum_type(out)
        _check_node(out, path)
        if "default" in out:
            out["default"] = _checked_default(out["default"], out, f"{path} (default)")
        return _ordered(out)

    def _rewrite(self, node: Schema, path: str, stack: tuple[str, ...]) -> Schema:
        if "oneOf" in node or "discriminator" in node:
            raise ValueError(f"{path}: oneOf/discriminated union; {_UNION_HINT}")
        if "not" in node:
            raise ValueError(f"{path}: 'not' is not supported in a structural schema")
        if "$ref" in node:
            return self._ref(node, path, stack)
        if "allOf" in node:
            return self._all_of(node, path, stack)
        if "anyOf" in node:
            return self._any_of(node, path, stack)
        return self._keywords(node, path, stack)

    def _ref(self, node: Schema, path: str, stack: tuple[str, ...]) -> Schema:
        ref = node["$ref"]
        name = ref.removeprefix(_DEFS_PREFIX).replace("~1", "/").replace("~0", "~")
        if not ref.startswith(_DEFS_PREFIX) or name not in self.defs:
            raise ValueError(f"{path}: cannot resolve $ref {ref!r}")
        if name in stack:
            cycle = " -> ".join((*stack[stack.index(name) :], name))
            raise ValueError(
                f"{path}: recursive model ({cycle}); structural schemas cannot express recursion"
            )
        inner = self.convert(self.defs[name], path, (*stack, name))
        return _merge(inner, self._siblings(node, "$ref", path, stack))

    def _all_of(self, node: Schema, path: str, stack: tuple[str, ...]) -> Schema:
        # Older pydantic wraps a described $ref as allOf: [{$ref}] — the same thing as a $ref.
        if len(node["allOf"]) != 1:
            raise ValueError(f"{path}: allOf with several schemas is not supported")
        inner = self.convert(node["allOf"][0], path, stack)
        return _merge(inner, self._siblings(node, "allOf", path, stack))

    def _any_of(self, node: Schema, path: str, stack: tuple[str, ...]) -> Schema:
        branches = node["anyOf"]
        non_null = [(i, b) for i, b in enumerate(branches) if b.get("type") != "null"]
        # X | None is just X in error paths; real unions name the member.
        converted = [
            self.convert(branch, path if len(non_null) == 1 else f"{path}.anyOf[{i}]", stack)
            for i, branch in non_null
        ]
        merged = _merge_branches(converted, path)
        if len(non_null) < len(branches):
            merged["nullable"] = True
        return _merge(merged, self._siblings(node, "anyOf", path, stack))

    def _siblings(self, node: Schema, skip: str, path: str, stack: tuple[str, ...]) -> Schema:
        """Keywords next to a $ref/allOf/anyOf (description, default, ...): the outer node's."""
        return self._keywords({k: v for k, v in node.items() if k != skip}, path, stack)

    def _keywords(self, node: Schema, path: str, stack: tuple[str, ...]) -> Schema:
        out: Schema = {}
        for key, value in node.items():
            if key in _DROPPED_KEYS:
                continue
            if key == "type":
                out["type"] = _single_type(value, path)
            elif key == "const":
                out["enum"] = [copy.deepcopy(value)]
                out.setdefault("type", _json_type(value, path))
            elif key == "format":
                if value in _KEPT_FORMATS:
                    out["format"] = value
            elif key == "default":
                if value is not None:
                    out["default"] = copy.deepcopy(value)
            elif key == "properties":
                out["properties"] = {
                    name: self.convert(sub, f"{path}.{name}", stack) for name, sub in value.items()
                }
            elif key == "items":
                if "prefixItems" not in node:  # tuples may carry `items: false` as well
                    out["items"] = self.convert(value, f"{path}[*]", stack)
            elif key == "prefixItems":
                out["items"] = self._tuple_items(value, path, stack)
                out.setdefault("minItems", len(value))
                out.setdefault("maxItems", len(value))
            elif key == "additionalProperties":
                out.update(self._additional(value, node, path, stack))
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                pass  # needs the inclusive bound too: see _exclusive_bounds
            elif key in _COPIED_KEYS or key.startswith("x-kubernetes-"):
                out[key] = copy.deepcopy(value)
            else:
                raise ValueError(f"{path}: unsupported JSON schema keyword {key!r}")
        out.update(_exclusive_bounds(node, out))
        return out

    def _tuple_items(self, items: list[Schema], path: str, stack: tuple[str, ...]) -> Schema:
        converted = [self.convert(item, f"{path}[{i}]", stack) for i, item in enumerate(items)]
        if any(item != converted[0] for item in converted):
            raise ValueError(
                f"{path}: tuple items differ ({converted}); a structural array has one item schema"
            )
        return converted[0]

    def _additional(
        self, value: bool | Schema, node: Schema, path: str, stack: tuple[str, ...]
    ) -> Schema:
        if value is False:
            return {}  # extra="forbid": the API server prunes unknown fields anyway
        if value is True or value == {}:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if "properties" in node:
            raise ValueError(
                f"{path}: properties and typed additionalProperties together are "
                "not allowed in a structural schema"
            )
        return {"additionalProperties": self.convert(value, f"{path}.*", stack)}


def _merge(inner: Schema, outer: Schema) -> Schema:
    """Outer keywords win (pydantic puts field descriptions there); CEL rules add up."""
    merged = dict(inner)
    for key, value in outer.items():
        if key == "x-kubernetes-validations" and key in merged:
            merged[key] = merged[key] + value
        else:
            merged[key] = value
    return merged


def _merge_branches(branches: list[Schema], path: str) -> Schema:
    """Collapse the non-null members of an anyOf into one node, or raise."""
    if not branches:
        raise ValueError(f"{path}: anyOf has only null members")
    if len(branches) == 1:
        return dict(branches[0])
    types = [branch.get("type") for branch in branches]
    if set(types) == {"integer", "string"}:
        # The API server allows no per-branch constraints here: `int | Literal["auto"]` keeps
        # its "auto" only in pydantic, so state it in an x-kubernetes-validations rule too.
        return {"x-kubernetes-int-or-string": True}
    if len(set(types)) == 1 and all(
        set(b) <= {"type", "enum", "description"} and "enum" in b for b in branches
    ):
        values = [value for branch in branches for value in branch["enum"]]
        unique = [value for i, value in enumerate(values) if value not in values[:i]]
        return {"type": types[0], "enum": unique}
    hint = _UNION_HINT if "object" in types else "use X | None, int | str, or Literal values"
    raise ValueError(
        f"{path}: cannot express anyOf of types {types} in a structural schema; {hint}"
    )


def _exclusive_bounds(node: Schema, out: Schema) -> Schema:
    """JSON schema's numeric exclusive bounds → OpenAPI v3.0's inclusive bound + boolean flag."""
    bounds: Schema = {}
    for exclusive, inclusive, sign in (
        ("exclusiveMinimum", "minimum", 1),
        ("exclusiveMaximum", "maximum", -1),
    ):
        limit = node.get(exclusive)
        if limit is None or isinstance(limit, bool):
            if limit is not None:  # already OpenAPI v3.0 style
                bounds[exclusive] = limit
            continue
        current = out.get(inclusive)
        if current is not None and sign * current > sign * limit:
            continue  # ge=5, gt=3: the inclusive bound is already the stricter one
        bounds[inclusive] = limit
        bounds[exclusive] = True
    return bounds


def _single_type(value: Any, path: str) -> str:
    if not isinstance(value, str) or value not in _JSON_TYPES:
        raise ValueError(f"{path}: type {value!r} is not a single non-null JSON type")
    return value


def _json_type(value: Any, path: str) -> str:
    """JSON type of a literal value (bool is checked before int: it is a subclass)."""
    for name in ("boolean", "integer", "number", "string", "object", "array"):
        if isinstance(value, _JSON_TYPES[name]):
            return name
    raise ValueError(f"{path}: no JSON type for literal {value!r}")


def _infer_enum_type(out: Schema) -> None:
    """Give an untyped enum (mixed Literal) a type when all its values share one."""
    types = {_json_type(value, "") if value is not None else None for value in out["enum"]}
    if len(types) == 1 and None not in types:
        out["type"] = types.pop()


def _is_untyped(node: Schema) -> bool:
    return any(node.get(marker) is True for marker in _UNTYPED_MARKERS)


def _check_node(node: Schema, path: str) -> None:
    """Structural schemas require a type (or a marker) on every node and items on arrays."""
    if "type" not in node and not _is_untyped(node):
        raise ValueError(
            f"{path}: no type; a structural schema needs one (give the field a concrete type, or "
            "json_schema_extra={'x-kubernetes-preserve-unknown-fields': True})"
        )
    if node.get("type") == "array" and "items" not in node:
        raise ValueError(f"{path}: array without an item schema")


def _checked_default(value: Any, node: Schema, path: str) -> Any:
    """Return a default the API server accepts for `node` (it must validate and be pruned)."""
    if value is None:
        if node.get("nullable"):
            return None
        raise ValueError(f"{path}: null default for a field that is not nullable")
    if node.get("x-kubernetes-int-or-string"):
        if isinstance(value, int | str) and not isinstance(value, bool):
            return value
        raise ValueError(f"{path}: {value!r} is neither an integer nor a string")
    kind = node.get("type")
    if kind is None:  # preserve-unknown-fields without a type: anything goes
        return value
    if kind == "object":
        return _checked_object_default(value, node, path)
    if kind == "array":
        if not isinstance(value, list):
            raise ValueError(f"{path}: {value!r} is not an array")
        return [
            _checked_default(item, node["items"], f"{path}[{i}]") for i, item in enumerate(value)
        ]
    if not isinstance(value, _JSON_TYPES[kind]) or (isinstance(value, bool) != (kind == "boolean")):
        raise ValueError(f"{path}: {value!r} is not of type {kind}")
    if "enum" in node and value not in node["enum"]:
        raise ValueError(f"{path}: {value!r} is not one of {node['enum']}")
    return value


def _checked_object_default(value: Any, node: Schema, path: str) -> Schema:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {value!r} is not an object")
    properties = node.get("properties", {})
    required = node.get("required", ())
    values_schema = node.get("additionalProperties")
    checked: Schema = {}
    for key, item in value.items():
        if key in properties:
            sub = properties[key]
            # An optional field whose own default is None means the same when left out, and
            # leaving it out keeps the default short.
            if item is None and key not in required and "default" not in sub:
                continue
            checked[key] = _checked_default(item, sub, f"{path}.{key}")
        elif isinstance(values_schema, dict):
            checked[key] = _checked_default(item, values_schema, f"{path}.{key}")
        elif node.get("x-kubernetes-preserve-unknown-fields"):
            checked[key] = item
        else:
            raise ValueError(
                f"{path}: unknown field {key!r} (the API server would prune it; "
                "are defaults serialized by alias?)"
            )
    return checked


def _ordered(node: Schema) -> Schema:
    known = {key: node[key] for key in _KEY_ORDER if key in node}
    return known | {key: node[key] for key in sorted(node) if key not in known}
