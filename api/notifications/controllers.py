"""``/api/notifications`` (each user's own), ``/api/notification-channels`` (admin)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from anyio import CapacityLimiter, to_thread
from litestar import Controller, Request
from litestar.params import Parameter

from api.auth.guards import current_user, requires_admin, requires_reader, requires_writer
from api.db import Database
from api.http import actor_of
from api.notifications import services
from api.notifications.schemas import (
    AlertOut,
    ChannelIn,
    ChannelOut,
    ChannelTestOut,
    ChannelUpdate,
    MarkedRead,
    NotificationOut,
    RuleIn,
    RuleOut,
    RuleUpdate,
    UnreadCount,
)
from api.openapi import error_responses
from api.routing import delete, get, patch, post
from api.schemas import Page, bounded
from headwater.notify.dispatch import test_channel
from headwater.secrets import SecretBox
from headwater.settings import Settings

MAX_PAGE_SIZE = 200
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
Offset = Annotated[int, bounded("Items to skip.", minimum=0)]
NotificationId = Annotated[int, bounded("A notification id.")]
ChannelId = Annotated[int, bounded("A channel id.")]
TESTS_AT_ONCE = CapacityLimiter(4)
"""Test sends run in threads (apprise blocks); a burst waits for these."""


class NotificationsController(Controller):
    path = "/api/notifications"
    tags = ("notifications",)

    @get(
        "/",
        operation_id="listNotifications",
        summary="Your notifications",
        description="Unread first, newest first within each. Live, they also arrive as "
        "`notification` events on `/api/ws` and Socket.IO.",
        guards=[requires_reader],
        responses=error_responses(400, 401),
    )
    async def list_notifications(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        limit: Limit = 50,
        offset: Offset = 0,
        unread_only: Annotated[
            bool, Parameter(query="unreadOnly", description="Only the unread ones.")
        ] = False,
    ) -> Page[NotificationOut]:
        user = current_user(request)
        return await database.run(
            lambda s: services.list_notifications(
                s, user, unread_only=unread_only, limit=limit, offset=offset
            )
        )

    @get(
        "/unread-count",
        operation_id="countUnreadNotifications",
        summary="How many of your notifications are unread",
        guards=[requires_reader],
        responses=error_responses(401),
    )
    async def unread(self, request: Request[Any, Any, Any], database: Database) -> UnreadCount:
        user = current_user(request)
        return UnreadCount(unread=await database.run(lambda s: services.unread_count(s, user)))

    @post(
        "/{notification_id:int}/read",
        operation_id="markNotificationRead",
        summary="Mark one of your notifications read",
        guards=[requires_reader],
        status_code=200,
        responses=error_responses(400, 401, 404),
    )
    async def mark_read(
        self, request: Request[Any, Any, Any], database: Database, notification_id: NotificationId
    ) -> NotificationOut:
        user = current_user(request)
        return await database.run(lambda s: services.mark_read(s, user, notification_id))

    @post(
        "/read-all",
        operation_id="markAllNotificationsRead",
        summary="Mark all your notifications read",
        guards=[requires_reader],
        status_code=200,
        responses=error_responses(401),
    )
    async def mark_all_read(
        self, request: Request[Any, Any, Any], database: Database
    ) -> MarkedRead:
        user = current_user(request)
        return MarkedRead(marked=await database.run(lambda s: services.mark_all_read(s, user)))


class ChannelsController(Controller):
    path = "/api/notification-channels"
    tags = ("notifications",)

    @get(
        "/",
        operation_id="listNotificationChannels",
        summary="Notification channels",
        description="URLs are masked: no password, token or key is ever answered.",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403),
    )
    async def list_channels(
        self, database: Database, limit: Limit = 50, offset: Offset = 0
    ) -> Page[ChannelOut]:
        return await database.run(lambda s: services.list_channels(s, limit=limit, offset=offset))

    @post(
        "/",
        operation_id="createNotificationChannel",
        summary="Add a channel (an apprise URL)",
        description="`mailto://user:password@host?to=…`, `tgram://bottoken/chatid`, "
        "`slack://…`, `json://host/path` and every other apprise URL. Stored encrypted.",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 409),
    )
    async def create_channel(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        settings: Settings,
        data: ChannelIn,
    ) -> ChannelOut:
        actor = actor_of(request)
        box = SecretBox.from_settings(settings)
        return await database.run(lambda s: services.create_channel(s, box, actor, data))

    @get(
        "/{channel_id:int}",
        operation_id="getNotificationChannel",
        summary="One channel",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 404),
    )
    async def get_channel(self, database: Database, channel_id: ChannelId) -> ChannelOut:
        return await database.run(
            lambda s: services.channel_out(services.get_channel(s, channel_id))
        )

    @patch(
        "/{channel_id:int}",
        operation_id="updateNotificationChannel",
        summary="Change a channel",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def update_channel(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        settings: Settings,
        channel_id: ChannelId,
        data: ChannelUpdate,
    ) -> ChannelOut:
        actor = actor_of(request)
        box = SecretBox.from_settings(settings)
        return await database.run(
            lambda s: services.update_channel(s, box, actor, channel_id, data)
        )

    @delete(
        "/{channel_id:int}",
        operation_id="deleteNotificationChannel",
        summary="Remove a channel",
        description="Messages still waiting for it are dropped.",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 404),
    )
    async def delete_channel(
        self, request: Request[Any, Any, Any], database: Database, channel_id: ChannelId
    ) -> None:
        actor = actor_of(request)
        await database.run(lambda s: services.delete_channel(s, actor, channel_id))

    @post(
        "/{channel_id:int}/test",
        operation_id="testNotificationChannel",
        summary="Send a test message now",
        description="Answers whether it went, or the channel's exact error (secrets masked). "
        "Works on a disabled channel too, to try it before enabling it.",
        status_code=200,
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 404),
    )
    async def test(
        self, database: Database, settings: Settings, channel_id: ChannelId
    ) -> ChannelTestOut:
        await database.run(lambda s: services.get_channel(s, channel_id))
        result = await to_thread.run_sync(test_channel, settings, channel_id, limiter=TESTS_AT_ONCE)
        return ChannelTestOut(ok=result.ok, error=result.error)


RuleId = Annotated[int, bounded("An alert rule id.")]


class AlertRulesController(Controller):
    path = "/api/alert-rules"
    tags = ("alerts",)

    @get(
        "/",
        operation_id="listAlertRules",
        summary="Alert rules",
        description="Admins see every rule (the defaults included); a user their own.",
        guards=[requires_writer],
        responses=error_responses(400, 401, 403),
    )
    async def list_rules(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[RuleOut]:
        user = current_user(request)
        return await database.run(
            lambda s: services.list_rules(s, user, limit=limit, offset=offset)
        )

    @post(
        "/",
        operation_id="createAlertRule",
        summary="Add an alert rule",
        description="A scope (all, a job, a source, a dataset, a tag), a condition, who "
        "hears (in-app recipients, channels) and a quiet period. Users may watch their own "
        "jobs, in-app; admins anything, through any channel.",
        guards=[requires_writer],
        responses=error_responses(400, 401, 403),
    )
    async def create_rule(
        self, request: Request[Any, Any, Any], database: Database, data: RuleIn
    ) -> RuleOut:
        user, actor = current_user(request), actor_of(request)
        return await database.run(lambda s: services.create_rule(s, user, actor, data))

    @get(
        "/{rule_id:int}",
        operation_id="getAlertRule",
        summary="One alert rule",
        guards=[requires_writer],
        responses=error_responses(400, 401, 403, 404),
    )
    async def get_rule(
        self, request: Request[Any, Any, Any], database: Database, rule_id: RuleId
    ) -> RuleOut:
        user = current_user(request)
        return await database.run(lambda s: services.rule_out(services.get_rule(s, user, rule_id)))

    @patch(
        "/{rule_id:int}",
        operation_id="updateAlertRule",
        summary="Change an alert rule",
        guards=[requires_writer],
        responses=error_responses(400, 401, 403, 404),
    )
    async def update_rule(
        self, request: Request[Any, Any, Any], database: Database, rule_id: RuleId, data: RuleUpdate
    ) -> RuleOut:
        user, actor = current_user(request), actor_of(request)
        return await database.run(lambda s: services.update_rule(s, user, actor, rule_id, data))

    @delete(
        "/{rule_id:int}",
        operation_id="deleteAlertRule",
        summary="Remove an alert rule",
        description="Its alerts go with it. Headwater's default rules are disabled instead.",
        guards=[requires_writer],
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def delete_rule(
        self, request: Request[Any, Any, Any], database: Database, rule_id: RuleId
    ) -> None:
        user, actor = current_user(request), actor_of(request)
        await database.run(lambda s: services.delete_rule(s, user, actor, rule_id))


class AlertsController(Controller):
    path = "/api/alerts"
    tags = ("alerts",)

    @get(
        "/",
        operation_id="listAlerts",
        summary="Fired alerts",
        description="Newest first, firing or resolved. Admins see all; others those of "
        "their rules and of their jobs.",
        guards=[requires_reader],
        responses=error_responses(400, 401),
    )
    async def list_alerts(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        limit: Limit = 50,
        offset: Offset = 0,
        alert_state: Annotated[
            Literal["firing", "resolved"] | None,
            Parameter(query="state", description="Only these."),
        ] = None,
        rule_id: Annotated[int | None, bounded("Only this rule's.", query="ruleId")] = None,
    ) -> Page[AlertOut]:
        user = current_user(request)
        return await database.run(
            lambda s: services.list_alerts(
                s, user, state=alert_state, rule_id=rule_id, limit=limit, offset=offset
            )
        )
