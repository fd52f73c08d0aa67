"""A run's fitted preprocessing, one typed state per kind of data, saved as JSON.

Fitted once on the training split, then stored in every checkpoint and beside the final
model, so a resume, `kubetrain eval` and `kubetrain sample` transform data exactly as
training did. The JSON layout (`{"kind": ..., ...}`) is the one runs have always written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kubetrain.errors import InvalidJob
from kubetrain.preprocessing.arrays import ArrayScale
from kubetrain.preprocessing.image import ChannelStats
from kubetrain.preprocessing.tabular import FeatureState
from kubetrain.preprocessing.target import TargetState
from kubetrain.preprocessing.tokenizer import Tokenizer


@dataclass
class TextState:
    kind: ClassVar[str] = "text"
    tokenizer: Tokenizer

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": self.tokenizer.to_dict()}


@dataclass
class TokensState:
    """Data that arrives as token ids (synthetic lm): only the vocabulary size."""

    kind: ClassVar[str] = "tokens"
    vocab_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocabSize": self.vocab_size}


@dataclass
class TabularState:
    kind: ClassVar[str] = "tabular"
    features: FeatureState
    target: TargetState

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "features": self.features.to_dict(),
                "target": self.target.to_dict()}


@dataclass
class ArrayState:
    """Arrays: images get per-channel statistics, other arrays an optional feature scaling."""

    kind: ClassVar[str] = "arrays"
    target: TargetState
    image: ChannelStats | None = None
    scale: ArrayScale | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "target": self.target.to_dict()}
        if self.image is not None:
            out["image"] = self.image.to_dict()
        if self.scale is not None:
            out["scale"] = self.scale.to_dict()
        return out


PreprocessingState = TextState | TokensState | TabularState | ArrayState


def state_from_dict(d: dict[str, Any]) -> PreprocessingState:
    """Read back what `to_dict` wrote (from a checkpoint or a run's model directory)."""
    try:
        kind = d["kind"]
        if kind == "text":
            return TextState(Tokenizer.from_dict(d["tokenizer"]))
        if kind == "tokens":
            return TokensState(int(d["vocabSize"]))
        if kind == "tabular":
            return TabularState(FeatureState.from_dict(d["features"]),
                                TargetState.from_dict(d["target"]))
        if kind == "arrays":
            return ArrayState(TargetState.from_dict(d["target"]),
                              ChannelStats.from_dict(d["image"]) if "image" in d else None,
                              ArrayScale.from_dict(d["scale"]) if "scale" in d else None)
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidJob(f"preprocessing state is damaged ({type(e).__name__}: {e})") from None
    raise InvalidJob(f"preprocessing state of unknown kind {kind!r}")
