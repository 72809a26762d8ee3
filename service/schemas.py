"""Request and response bodies of the HTTP API; limits live here so bad input is refused before any work."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from eigml.dialogue import Dialogue, Turn
from index.store import VERSION_PATTERN
from service.indexes import ReindexStatus
from service.recommender import Prediction, RecommendRequest, RecommendResult

MAX_TURNS = 32
MAX_TURN_CHARS = 2_000
MAX_TOP_K = 50
MAX_PACKS = 64
MAX_EXCLUDE = 1_000

NO_NUL = r"^[^\x00]*$"  # a NUL byte is never text: refused, so it reaches no tokenizer, log line or C string
Speaker = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
PackName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
StickerId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker: Speaker
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TURN_CHARS, pattern=NO_NUL)]


class RecommendBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "dialogue": [{"speaker": "B", "text": "I failed my driving test again..."}], "top_k": 5}]})

    dialogue: list[TurnIn] = Field(min_length=1, max_length=MAX_TURNS, description="turns, oldest first")
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    packs: list[PackName] | None = Field(default=None, min_length=1, max_length=MAX_PACKS,
                                         description="recommend only from these packs (default: all)")
    exclude: list[StickerId] | None = Field(default=None, max_length=MAX_EXCLUDE,
                                            description="sticker ids never to return")
    responder: Speaker | None = Field(default=None, description="who sends the sticker; default: the latest "
                                                                "speaker other than the last one")

    def to_request(self) -> RecommendRequest:
        dialogue = Dialogue(turns=tuple(Turn(t.speaker, t.text) for t in self.dialogue), responder=self.responder)
        return RecommendRequest(dialogue=dialogue, top_k=self.top_k,
                                packs=tuple(self.packs) if self.packs is not None else None,
                                exclude=tuple(self.exclude) if self.exclude else None)


class HitOut(BaseModel):
    sticker_id: str
    pack: str
    score: float = Field(description="the model's score in (0, 1); hits come in the served order, which covers "
                                     "the dialogue's likely emotions (STICKERS_DIVERSITY), so it need not fall")
    image_url: str
    emotion: str
    name: str | None
    emoji: str | None


class PredictionOut(BaseModel):
    label: str
    probability: float

    @classmethod
    def of(cls, prediction: Prediction | None) -> PredictionOut | None:
        return None if prediction is None else cls(label=prediction.label, probability=prediction.probability)


class RecommendResponse(BaseModel):
    hits: list[HitOut]
    emotion: PredictionOut
    intention: PredictionOut | None
    model_version: str
    index_version: str

    @classmethod
    def of(cls, result: RecommendResult) -> RecommendResponse:
        emotion = PredictionOut.of(result.emotion)
        assert emotion is not None
        return cls(hits=[HitOut(sticker_id=h.sticker_id, pack=h.pack, score=h.score, image_url=h.image_url,
                                emotion=h.emotion, name=h.name, emoji=h.emoji) for h in result.hits],
                   emotion=emotion, intention=PredictionOut.of(result.intention),
                   model_version=result.model_version, index_version=result.index_version)


class Health(BaseModel):
    status: Literal["ok", "ready"]
    model_version: str | None = None
    index_version: str | None = None
    stickers: int | None = None
    encoder_backend: str | None = None


class ReloadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)] | None = Field(
        default=None, description="the version to load (e.g. 000002-3f9a0c1b2d); default: the index root's CURRENT")


class ReloadResponse(BaseModel):
    previous_version: str
    index_version: str
    published: bool  # whether the other replicas were told (Redis up)


class ReindexResponse(BaseModel):
    state: Literal["idle", "running", "done", "failed"]
    version: str | None
    error: str | None
    started_at: float | None
    finished_at: float | None

    @classmethod
    def of(cls, status: ReindexStatus) -> ReindexResponse:
        return cls(state=status.state, version=status.version, error=status.error, started_at=status.started_at,
                   finished_at=status.finished_at)
