"""Plain YAML scalars as the Kubernetes API server reads them, then as JSON carries them.

kube-apiserver and kubectl turn YAML into JSON with sigs.k8s.io/yaml, which resolves plain
(unquoted) scalars with go-yaml v2: YAML 1.1 booleans including `y`/`n`/`on`/`off`, octal `0755`,
`0x`/`0o`/`0b` integers, `1_000`, no sexagesimal `1:30`, and timestamps left as strings. The JSON
step then writes an integral float as an integer (`1e3` is 1000, `3.0` is 3), cannot carry NaN or
infinity, and the API server reads an integer beyond int64 back as a float. PyYAML's YAML 1.1
resolver differs on each of these, so kubetrain resolves scalars here instead.
"""

from __future__ import annotations

import math
import re
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1


class Uint64(int):
    """An integer go-yaml holds as uint64 (in int64's range it would be an int): sigs.k8s.io/yaml
    cannot use it as a map key, and JSON readers on the server take it for a float."""


class NotJSON(ValueError):
    """A value JSON cannot carry (NaN, infinity): the API server's YAML-to-JSON step fails."""


_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"], True),
    **dict.fromkeys(["on", "On", "ON"], True),
    **dict.fromkeys(["n", "N", "no", "No", "NO", "false", "False", "FALSE"], False),
    **dict.fromkeys(["off", "Off", "OFF"], False),
    **dict.fromkeys(["", "~", "null", "Null", "NULL"], None),
    **dict.fromkeys([".nan", ".NaN", ".NAN"], math.nan),
    **dict.fromkeys([".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"], math.inf),
    **dict.fromkeys(["-.inf", "-.Inf", "-.INF"], -math.inf),
}
# go-yaml looks a scalar up in the table above only if its first character is one of these.
_TABLE_HINTS = frozenset("yYnNtTfFoO~+-0123456789.")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def _go_parse_int(text: str, signed: bool) -> int | None:
    """strconv.ParseInt(text, 0, 64) (or ParseUint when not signed); None on any error."""
    negative = False
    if signed and text[:1] in ("+", "-"):
        negative, text = text[0] == "-", text[1:]
    base = 10
    if len(text) > 1 and text[0] == "0":
        prefix = text[1].lower()
        base, text = {"x": (16, text[2:]), "o": (8, text[2:]), "b": (2, text[2:])}.get(
            prefix, (8, text[1:])
        )
    if not text or any(c not in _DIGITS[base] for c in text):
        return None
    value = -int(text, base) if negative else int(text, base)
    if signed:
        return value if INT64_MIN <= value <= INT64_MAX else None
    return value if value <= UINT64_MAX else None


def _go_parse_float(text: str) -> float | None:
    """strconv.ParseFloat for decimal text; None where Go reports an error (overflow)."""
    value = float(text)
    return None if math.isinf(value) else value


def resolve_plain(text: str) -> Any:
    """A plain scalar as go-yaml v2 resolves it (its resolve() with no tag)."""
    if not text:
        return None
    if text[0] not in _TABLE_HINTS:
        return text
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if text[0] == ".":
        if _DOT_FLOAT.fullmatch(text) and (f := _go_parse_float(text)) is not None:
            return f
        return text
    if text[0] not in "+-0123456789":
        return text
    # Timestamps (2001-12-14) come back as the original string: nothing to do for them.
    plain = text.replace("_", "")
    if (i := _go_parse_int(plain, signed=True)) is not None:
        return i
    if (u := _go_parse_int(plain, signed=False)) is not None:
        return Uint64(u)
    if _YAML_FLOAT.fullmatch(plain) and (f := _go_parse_float(plain)) is not None:
        return f
    return text  # go-yaml's later 0b/-0b branches accept nothing ParseInt refused above


def resolve_tagged(tag: str, text: str) -> Any:
    """A scalar with an explicit standard tag (`!!int "3"`); ValueError where go-yaml fails."""
    kind = tag.rsplit(":", 1)[-1]
    if kind in ("str", "binary", "timestamp"):
        if kind == "binary":
            import base64
            import binascii

            try:
                return base64.b64decode("".join(text.split()), validate=True).decode(
                    "utf-8", "replace"
                )
            except (binascii.Error, ValueError) as e:
                raise ValueError(f"!!binary value is not base64: {e}") from None
        return text
    value = resolve_plain(text)
    wanted = {"int": int, "float": float, "bool": bool, "null": type(None)}.get(kind)
    if wanted is None:  # !!map, !!seq on a scalar, !!merge ...: go-yaml keeps the text
        return text
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool | Uint64):
        return float(value)
    if isinstance(value, wanted) and not (wanted is int and isinstance(value, bool)):
        return value
    raise ValueError(f"cannot decode {text!r} as !!{kind}")


def key_string(key: Any) -> str:
    """A mapping key as sigs.k8s.io/yaml writes it into JSON; ValueError where it cannot."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, str):
        return key
    if isinstance(key, Uint64) or key is None:
        raise ValueError(f"unsupported map key {key!r}")
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        if math.isnan(key):
            return ".nan"
        if math.isinf(key):
            return ".inf" if key > 0 else "-.inf"
        return _go_float32_g(key)
    raise ValueError(f"unsupported map key {key!r}")


def _go_float32_g(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32): the shortest digits of the float32."""
    import struct

    f32 = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        text = f"{f32:.{digits - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == f32:
            break
    exponent = int(text.split("e")[1])
    if exponent < -4 or exponent >= 6:  # Go's %g with the shortest digits
        return text
    return f"{f32:.{max(digits - 1 - exponent, 0)}f}"


def to_json_value(value: Any) -> Any:
    """A resolved scalar after the trip through JSON that the API server makes.

    Integral floats below 1e21 are written as integers and read back as int64 where they fit;
    integers beyond int64 are read back as floats; NaN and infinity cannot be written."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX and not isinstance(value, Uint64):
            return int(value)
        value = float(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise NotJSON("NaN and infinity are not JSON numbers")
        if value.is_integer() and abs(value) < 1e21 and INT64_MIN <= int(value) <= INT64_MAX:
            return int(value)
        return value
    return value
