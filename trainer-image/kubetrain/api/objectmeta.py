"""What the API server checks in every object's metadata, checked locally too.

A CRD's schema cannot describe metadata; the API server validates it itself (apimachinery's
ValidateObjectMeta) and, with strict field validation, refuses fields ObjectMeta does not have.
"""

from __future__ import annotations

import re
from typing import Any

KNOWN_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ANNOTATIONS_MAX_BYTES = 256 * 1024


def _qualified_name(key: str) -> str | None:
    """Why `key` is not a qualified name (label and annotation keys), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return "prefix must be a DNS subdomain (lowercase letters, digits, '-' and '.')"
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        return (
            "must be at most 63 characters: letters, digits, '-', '_' or '.', starting and"
            " ending with a letter or digit (an optional DNS prefix and '/' before)"
        )
    return None


def metadata_problems(metadata: Any) -> list[tuple[tuple[str, ...], str]]:
    """(path, message) for each metadata problem the API server would report."""
    if not isinstance(metadata, dict):
        return []  # the model reports the type
    found: list[tuple[tuple[str, ...], str]] = []
    for key in metadata:
        if key not in KNOWN_FIELDS:
            found.append((("metadata", key), "unknown field"))
    namespace = metadata.get("namespace")
    if isinstance(namespace, str) and (len(namespace) > 63 or not _LABEL.fullmatch(namespace)):
        found.append((("metadata", "namespace"), "must be a DNS label (RFC 1123)"))
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        for key, value in labels.items():
            if (why := _qualified_name(key)) is not None:
                found.append((("metadata", "labels", key), f"invalid label key: {why}"))
            if isinstance(value, str) and value and (len(value) > 63 or not _NAME.fullmatch(value)):
                found.append(
                    (
                        ("metadata", "labels", key),
                        "invalid label value: at most 63 characters, letters, digits, '-', '_'"
                        " or '.', starting and ending with a letter or digit",
                    )
                )
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        size = 0
        for key, value in annotations.items():
            # Annotation keys are checked lowercased (apimachinery's ValidateAnnotations).
            if (why := _qualified_name(key.lower())) is not None:
                found.append((("metadata", "annotations", key), f"invalid annotation key: {why}"))
            size += len(key.encode()) + (len(value.encode()) if isinstance(value, str) else 0)
        if size > ANNOTATIONS_MAX_BYTES:
            found.append(
                (
                    ("metadata", "annotations"),
                    f"annotations take {size:,} bytes; the limit is {ANNOTATIONS_MAX_BYTES:,}",
                )
            )
    return found
