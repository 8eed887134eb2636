"""user.v1.UserService: request validation and proto mapping; storage is in store.py."""

from __future__ import annotations

from typing import Any

import grpc

from libs.platform import db
from libs.platform import validation as v
from libs.platform.auth import require_service, require_user_or_service
from libs.platform.batching import Coalescer
from libs.platform.errors import FieldViolation, InvalidArgument, NotFound, Unauthenticated
from libs.platform.protoutil import timestamp
from services.usersvc.passwords import Passwords
from services.usersvc.store import UserRow, UserStore
from user.v1 import user_pb2, user_pb2_grpc

MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_DISPLAY_NAME = 200
MAX_BATCH_GET = 100
BAD_CREDENTIALS = "invalid email or password"
# A password oracle: only the login service may ask it.
VERIFY_CREDENTIALS_CALLERS = frozenset({"authsvc"})


def _password(value: str, field: str = "password") -> str:
    return v.length(value, field, min_len=MIN_PASSWORD, max_len=MAX_PASSWORD)


def _display_name(value: str) -> str:
    return v.length(value.strip(), "display_name", max_len=MAX_DISPLAY_NAME)


def _required(value: str, field: str, max_len: int) -> str:
    return v.length(value, field, min_len=1, max_len=max_len)


def _collect(*checks: tuple) -> list:  # type: ignore[type-arg]
    """Run (fn, *args) validators; raise one InvalidArgument with every violation."""
    results: list = []  # type: ignore[type-arg]
    violations: list[FieldViolation] = []
    for fn, *args in checks:
        try:
            results.append(fn(*args))
        except InvalidArgument as exc:
            violations.extend(exc.violations)
            results.append(None)
    if violations:
        raise InvalidArgument(violations)
    return results


def _user_fields(row: UserRow) -> dict[str, Any]:
    # User and GetUserResponse carry the same fields (GetUserResponse keeps the seed's flat
    # shape).
    return {
        "user_id": row.id,
        "email": row.email,
        "display_name": row.display_name,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    }


def _user_pb(row: UserRow) -> user_pb2.User:
    return user_pb2.User(**_user_fields(row))


class UserService(user_pb2_grpc.UserServiceServicer):
    def __init__(self, store: UserStore, passwords: Passwords) -> None:
        self._store = store
        self._passwords = passwords
        # Concurrent GetUser calls share one query (see libs/platform/batching.py): under
        # load that saves a database round trip, a pool checkout and asyncpg's per-query
        # work for every call that joins a batch.
        self._reads: Coalescer[str, UserRow | None] = Coalescer(
            self._read_many, max_batch=MAX_BATCH_GET
        )

    async def CreateUser(  # noqa: N802 - gRPC method names
        self, request: user_pb2.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.CreateUserResponse:
        email, password, display_name = _collect(
            (v.email, request.email),
            (_password, request.password),
            (_display_name, request.display_name),
        )
        password_hash = await self._passwords.hash(password)
        row = await self._store.create(email, display_name, password_hash)
        return user_pb2.CreateUserResponse(
            user_id=row.id,
            email=row.email,
            display_name=row.display_name,
            created_at=timestamp(row.created_at),
        )

    async def _read_many(self, user_ids: list[str], time_limit: float) -> dict[str, UserRow | None]:
        found = {row.id: row for row in await self._store.get_many(user_ids, time_limit)}
        return {u: found.get(u) for u in user_ids}

    async def _get(self, user_id: str) -> UserRow:
        row = await self._reads.get(user_id, db.query_timeout())
        if row is None:
            raise NotFound(f"user {user_id} does not exist")
        return row

    async def GetUser(  # noqa: N802
        self, request: user_pb2.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.GetUserResponse:
        user_id = v.uuid_str(request.user_id, "user_id")
        require_user_or_service(user_id)
        return user_pb2.GetUserResponse(**_user_fields(await self._get(user_id)))

    async def UpdateUser(  # noqa: N802
        self, request: user_pb2.UpdateUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.UpdateUserResponse:
        checks: list[tuple] = [(v.uuid_str, request.user_id, "user_id")]  # type: ignore[type-arg]
        has = request.HasField
        checks.append((v.email, request.email) if has("email") else (lambda: None,))
        checks.append((_password, request.password) if has("password") else (lambda: None,))
        checks.append(
            (_display_name, request.display_name) if has("display_name") else (lambda: None,)
        )
        user_id, email, password, display_name = _collect(*checks)
        require_user_or_service(user_id)
        password_hash = await self._passwords.hash(password) if password is not None else None
        row = await self._store.update(
            user_id, email=email, display_name=display_name, password_hash=password_hash
        )
        if row is None:
            raise NotFound(f"user {user_id} does not exist")
        return user_pb2.UpdateUserResponse(user=_user_pb(row))

    async def DeleteUser(  # noqa: N802
        self, request: user_pb2.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.DeleteUserResponse:
        user_id = v.uuid_str(request.user_id, "user_id")
        require_user_or_service(user_id)
        if not await self._store.delete(user_id):
            raise NotFound(f"user {user_id} does not exist")
        return user_pb2.DeleteUserResponse(success=True)

    async def ListUsers(  # noqa: N802
        self, request: user_pb2.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.ListUsersResponse:
        # Listing every account is an operator's job, done through a service identity.
        require_service()
        size = v.page_size(request.page_size)
        after = v.page_start(request.page_token)
        rows, next_token = v.split_page(await self._store.list(size + 1, after), size)
        return user_pb2.ListUsersResponse(
            users=[_user_pb(r) for r in rows], next_page_token=next_token
        )

    async def BatchGetUsers(  # noqa: N802
        self, request: user_pb2.BatchGetUsersRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.BatchGetUsersResponse:
        require_service()
        if not request.user_ids:
            raise InvalidArgument.field("user_ids", "must name at least one user")
        if len(request.user_ids) > MAX_BATCH_GET:
            raise InvalidArgument.field(
                "user_ids", f"must name at most {MAX_BATCH_GET} users; split the request"
            )
        user_ids = _collect(
            *((v.uuid_str, u, f"user_ids[{i}]") for i, u in enumerate(request.user_ids))
        )
        found = await self._read_many(list(dict.fromkeys(user_ids)), db.query_timeout())
        rows = {u: row for u, row in found.items() if row is not None}
        missing = [u for u in found if u not in rows]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise NotFound(f"user {missing[0]} does not exist{more}")
        return user_pb2.BatchGetUsersResponse(users=[_user_pb(rows[u]) for u in user_ids])

    async def VerifyCredentials(  # noqa: N802
        self, request: user_pb2.VerifyCredentialsRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.VerifyCredentialsResponse:
        require_service(VERIFY_CREDENTIALS_CALLERS)
        email, password = _collect(
            (_required, request.email.strip(), "email", v.MAX_EMAIL_LENGTH),
            (_required, request.password, "password", MAX_PASSWORD),
        )
        creds = await self._store.credentials(email)
        ok = await self._passwords.verify(creds.password_hash if creds else None, password)
        if not ok or creds is None:
            raise Unauthenticated(BAD_CREDENTIALS)
        return user_pb2.VerifyCredentialsResponse(user_id=creds.id, email=creds.email)
