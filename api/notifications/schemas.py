"""Wire types of notifications, channels, alert rules and alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from api.schemas import NO_NUL

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Threshold = Annotated[float, msgspec.Meta(ge=0, le=1e15)]
Window = Annotated[int, msgspec.Meta(ge=1, le=525_600)]
Url = Annotated[str, msgspec.Meta(min_length=3, max_length=2000, pattern=NO_NUL)]
PerHour = Annotated[int, msgspec.Meta(ge=1, le=10_000)]


class NotificationOut(msgspec.Struct, rename="camel"):
    id: int
    title: str
    body: str
    level: str
    """info, warning or error."""
    subject: str | None
    """What it is about: ``job:12``, ``dataset:marts.orders``…"""
    link: str | None
    """The API path of that object, when it has one."""
    alert_id: int | None
    created_at: datetime
    read_at: datetime | None
    read: bool


class UnreadCount(msgspec.Struct, rename="camel"):
    unread: int


class MarkedRead(msgspec.Struct, rename="camel"):
    marked: int
    """How many notifications were unread and are read now."""


class ChannelIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Name
    url: Url
    """An apprise URL: ``mailto://…``, ``tgram://…``, ``slack://…``, ``json://…``…
    Stored encrypted; answered masked."""
    enabled: bool = True
    rate_limit_per_hour: PerHour = 60


class ChannelUpdate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    url: Url | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    rate_limit_per_hour: PerHour | msgspec.UnsetType = msgspec.UNSET


class ChannelOut(msgspec.Struct, rename="camel"):
    id: int
    name: str
    kind: str
    """The apprise scheme: mailto, tgram, slack, json…"""
    url: str
    """Masked: no password, token or key."""
    enabled: bool
    rate_limit_per_hour: int
    created_at: datetime
    updated_at: datetime
    last_sent_at: datetime | None
    last_error: str | None


class ChannelTestOut(msgspec.Struct, rename="camel"):
    ok: bool
    error: str | None
    """The channel's own error, secrets masked."""


Condition = Literal[
    "run_failed",
    "duration_above",
    "rows_below",
    "rows_outside_band",
    "success_rate_below",
    "test_failed",
    "stale",
    "schema_change",
    "cache_hit_rate_below",
    "api_error_rate_above",
    "api_p95_above",
]
ScopeKind = Literal["all", "job", "source", "dataset", "tag"]


class Recipients(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    owner: bool = False
    """The owner of the job the alert is about."""
    roles: list[Literal["admin", "user", "viewer"]] = msgspec.field(default_factory=list)
    users: list[Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]] = msgspec.field(
        default_factory=list
    )


class RuleIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Name
    condition: Condition
    scope: ScopeKind = "all"
    scope_value: Annotated[str, msgspec.Meta(max_length=300, pattern=NO_NUL)] | None = None
    """The job id, source name, dataset name or tag the rule watches."""
    threshold: Annotated[float, msgspec.Meta(ge=0, le=1e15)] | None = None
    window_minutes: Annotated[int, msgspec.Meta(ge=1, le=525_600)] | None = None
    channel_ids: list[Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]] = msgspec.field(
        default_factory=list
    )
    in_app: bool = True
    recipients: Recipients = msgspec.field(default_factory=lambda: Recipients(owner=True))
    quiet_minutes: Annotated[int, msgspec.Meta(ge=0, le=10_080)] = 0
    enabled: bool = True


class RuleUpdate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    threshold: (
        Annotated[float, msgspec.Meta(ge=0, le=1000000000000000.0)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    window_minutes: Annotated[int, msgspec.Meta(ge=1, le=525600)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    channel_ids: list[Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    in_app: bool | msgspec.UnsetType = msgspec.UNSET
    recipients: Recipients | msgspec.UnsetType = msgspec.UNSET
    quiet_minutes: Annotated[int, msgspec.Meta(ge=0, le=10_080)] | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class RuleOut(msgspec.Struct, rename="camel"):
    id: int
    name: str
    condition: str
    scope: str
    scope_value: str | None
    threshold: float | None
    window_minutes: int | None
    channel_ids: list[int]
    in_app: bool
    recipients: Recipients
    quiet_minutes: int
    enabled: bool
    owner_id: int | None
    builtin: str | None
    """Set on the rules Headwater creates on first start (edit or disable them)."""
    created_at: datetime
    updated_at: datetime


class AlertOut(msgspec.Struct, rename="camel"):
    id: int
    rule_id: int
    rule_name: str
    subject: str
    state: str
    """firing or resolved."""
    message: str
    value: float | None
    run_id: str | None
    fired_at: datetime
    resolved_at: datetime | None
