"""``/api/users``: your own account (any role) and account management (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request
from litestar.params import Parameter
from sqlalchemy.orm import Session

from api.audit.services import record
from api.auth.guards import current_user, requires_admin, requires_reader
from api.auth.middleware import when
from api.auth.passwords import HashingPool, hash_password
from api.auth.services import AuthService
from api.db import Database
from api.errors import InvalidInput
from api.http import actor_of
from api.openapi import error_responses
from api.routing import get, patch, post
from api.schemas import NO_NUL, Page, bounded
from api.users import services
from api.users.models import Role, User
from api.users.schemas import (
    CreateUserRequest,
    PasswordReset,
    ResetPasswordRequest,
    UpdateMeRequest,
    UpdateUserRequest,
    UserCreated,
    UserOut,
)
from headwater.db import as_utc

MAX_PAGE_SIZE = 200
UserId = Annotated[int, bounded("User id.")]


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,  # type: ignore[arg-type]
        is_active=user.is_active,
        created_at=as_utc(user.created_at),
        last_login_at=as_utc(user.last_login_at),
    )


class UsersController(Controller):
    path = "/api/users"
    tags = ("users",)

    @get(
        "/me",
        operation_id="getMe",
        summary="Your account",
        guards=[requires_reader],
        responses=error_responses(401),
    )
    async def get_me(self, request: Request[Any, Any, Any]) -> UserOut:
        # Read fresh from the store by the authentication of this very request.
        user = current_user(request)
        return UserOut(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,  # type: ignore[arg-type]
            is_active=True,
            created_at=when(user.created_at),
            last_login_at=when(user.last_login_at),
        )

    @patch(
        "/me",
        operation_id="updateMe",
        summary="Change your name or password",
        description="A new password needs `currentPassword` and ends every token you hold, "
        "this one included: sign in again.",
        guards=[requires_reader],
        responses=error_responses(400, 401, 409, 429, 503),
    )
    async def update_me(
        self,
        request: Request[Any, Any, Any],
        data: UpdateMeRequest,
        database: Database,
        hashing: HashingPool,
        auth_service: AuthService,
    ) -> UserOut:
        me = current_user(request)
        actor = actor_of(request)
        new_hash: str | None = None
        checked_hash: str | None = None
        if not isinstance(data.password, msgspec.UnsetType):
            if isinstance(data.current_password, msgspec.UnsetType):
                raise InvalidInput("Changing the password needs currentPassword")
            services.validate_password(data.password)
            checked_hash = await auth_service.confirm_password(
                me.id, me.email, data.current_password
            )
            new_hash = await hashing.run(hash_password, data.password)

        def apply(session: Session) -> UserOut:
            user = services.get_user(session, me.id)
            if data.name is not None and services.validate_name(data.name) != user.name:
                before = services.snapshot(user)
                user.name = services.validate_name(data.name)
                after = services.snapshot(user)
                record(session, actor, "user.update", "user", user.id, before=before, after=after)
            if new_hash is not None:
                services.set_password(
                    session, user.id, new_hash, actor, expected_hash=checked_hash, reset=False
                )
            return user_out(user)

        return await database.run(apply)

    @get(
        "/",
        operation_id="listUsers",
        summary="List users",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403),
    )
    async def list_users(
        self,
        database: Database,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        offset: Annotated[int, bounded("Matches to skip.", minimum=0)] = 0,
        role: Annotated[Role | None, Parameter(description="Only this role.")] = None,
        active: Annotated[bool | None, Parameter(description="Only (in)active users.")] = None,
        search: Annotated[
            str | None,
            Parameter(
                max_length=200, pattern=NO_NUL, description="Substring of the email or name."
            ),
        ] = None,
    ) -> Page[UserOut]:
        filters = services.UserFilter(role=role, active=active, search=search)

        def page(session: Session) -> Page[UserOut]:
            users, total = services.list_users(session, limit=limit, offset=offset, filters=filters)
            return Page([user_out(u) for u in users], total=total, limit=limit, offset=offset)

        return await database.run(page)

    @post(
        "/",
        operation_id="createUser",
        summary="Create a user",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 409, 503),
    )
    async def create_user(
        self,
        request: Request[Any, Any, Any],
        data: CreateUserRequest,
        database: Database,
        hashing: HashingPool,
    ) -> UserCreated:
        services.validate_email(data.email)
        generated = services.generate_password() if data.password is None else None
        password = data.password or generated or ""
        services.validate_password(password)
        password_hash = await hashing.run(hash_password, password)
        actor = actor_of(request)

        def create(session: Session) -> UserCreated:
            user = services.create_user(
                session, data.email, password_hash, data.role, name=data.name, actor=actor
            )
            out = user_out(user)
            fields = {name: getattr(out, name) for name in out.__struct_fields__}
            return UserCreated(**fields, initial_password=generated)

        return await database.run(create)

    @get(
        "/{user_id:int}",
        operation_id="getUser",
        summary="Get a user",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 404),
    )
    async def get_user(self, database: Database, user_id: UserId) -> UserOut:
        return await database.run(lambda s: user_out(services.get_user(s, user_id)))

    @patch(
        "/{user_id:int}",
        operation_id="updateUser",
        summary="Change a user's name, role or active flag",
        description="Changing the role or deactivating ends the user's tokens at once. The "
        "last active admin cannot be demoted or deactivated (409).",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def update_user(
        self,
        request: Request[Any, Any, Any],
        data: UpdateUserRequest,
        database: Database,
        user_id: UserId,
    ) -> UserOut:
        actor = actor_of(request)
        return await database.run(
            lambda s: user_out(
                services.update_user(
                    s, user_id, actor, name=data.name, role=data.role, is_active=data.is_active
                )
            )
        )

    @post(
        "/{user_id:int}/password",
        operation_id="resetPassword",
        summary="Reset a user's password",
        description="Sets the given password, or generates one returned once. Ends the "
        "user's tokens.",
        guards=[requires_admin],
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 503),
    )
    async def reset_password(
        self,
        request: Request[Any, Any, Any],
        data: ResetPasswordRequest,
        database: Database,
        hashing: HashingPool,
        user_id: UserId,
    ) -> PasswordReset:
        generated = services.generate_password() if data.password is None else None
        password = data.password or generated or ""
        services.validate_password(password)
        await database.run(lambda s: services.get_user(s, user_id))  # 404 before hashing
        password_hash = await hashing.run(hash_password, password)
        actor = actor_of(request)

        def reset(session: Session) -> PasswordReset:
            user = services.set_password(session, user_id, password_hash, actor)
            return PasswordReset(user=user_out(user), new_password=generated)

        return await database.run(reset)
