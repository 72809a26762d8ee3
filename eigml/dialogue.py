"""The dialogue a sticker answers: plain values shared by data loading, the model and the service."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str


@dataclass(frozen=True)
class Dialogue:
    """The turns so far, oldest first, and who will send the sticker (None: the next speaker is unknown)."""

    turns: tuple[Turn, ...]
    responder: str | None = None
    lang: str | None = None
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
