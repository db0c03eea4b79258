"""Request and response models of the online API, for its OpenAPI document.

Responses are not built through these models (the hot path writes the stored JSON through to
the response); they describe what the handlers send. Profiles allow extra keys: later issues
add some (experiments, recommendations) and the API passes them through.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_ID_LENGTH = 512
MAX_BATCH_IDS = 100
DEFAULT_MEMBERS_LIMIT = 1_000
MAX_MEMBERS_LIMIT = 10_000

VisitorId = Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Decision(_Open):
    content_variant: str = Field(description="the content variant to render")
    rule_id: str | None = Field(None, description="the decision rule that chose it")
    segment_key: str | None = Field(None, description="the segment the rule matched, if any")


class Cluster(_Open):
    id: int | None = None
    name: str | None = None


class Churn(_Open):
    probability: float | None = None
    risk_band: str | None = None
    at_risk: bool | None = None
    model_version: str | None = None


class Profile(_Open):
    """A person's profile. Without personalization consent (and for unknown visitors) only
    ``personalized: false`` and the decision."""

    personalized: bool
    decision: Decision
    person_id: str | None = Field(None, description="pseudonymous person id")
    as_of: str | None = Field(None, description="instant the profile was computed at")
    segments: list[str] | None = None
    rfm_segment: str | None = None
    cluster: Cluster | None = None
    churn: Churn | None = None


class Served(BaseModel):
    version: str = Field(description="version of the profile store that answered")
    as_of: str = Field(description="instant that version's results were computed at")


class RealtimeSegment(BaseModel):
    segment: str = Field(description="real-time segment key (seeds/realtime_segment_rules.csv)")
    since: str = Field(description="event time the person entered it (ISO-8601, UTC)")


class Realtime(BaseModel):
    """What the stream consumer keeps (`segwh stream`), beside the batch profile: the in-session
    segments held now. Empty without personalization consent."""

    source: str = Field("stream", description="always `stream`: not the batch profile")
    segments: list[RealtimeSegment]


class ProfileResponse(Served):
    known: bool = Field(description="false: the id is unknown and the profile is the default")
    profile: Profile = Field(description="the batch profile, from the served version")
    realtime: Realtime


class DecisionResponse(Served):
    known: bool
    personalized: bool
    decision: Decision


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[VisitorId] = Field(
        min_length=1,
        max_length=MAX_BATCH_IDS,
        description=f"user ids or anonymous ids, at most {MAX_BATCH_IDS}",
    )


class BatchResult(BaseModel):
    id: str = Field(description="the id as asked")
    known: bool
    profile: Profile
    realtime: Realtime


class BatchResponse(Served):
    results: list[BatchResult] = Field(description="one per id asked, in the same order")


class SegmentsResponse(Served):
    segments: list[str]


class MembersResponse(Served):
    segment: str
    members: list[str] = Field(description="pseudonymous person ids, in id order")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page (from the same version); null: last page"
    )


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    version: str
    as_of: str
    loaded_at: str
    persons: int


class ErrorResponse(BaseModel):
    error: str = Field(description="machine-readable code")
    detail: str = Field(description="what happened and what to do")
