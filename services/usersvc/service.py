"""user.v1.UserService: request validation and proto mapping; storage is in store.py."""

from __future__ import annotations

from typing import Any

from libs.platform import db, emails, pagetokens
from libs.platform import validation as v
from libs.platform.admission import (
    Overloaded,
    RateLimiter,
    abort_overloaded,
    abort_retry_later,
    client_address,
)
from libs.platform.auth.principals import require_service, require_user_or_service
from libs.platform.batching import Coalescer
from libs.platform.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from libs.platform.protoutil import timestamp
from libs.platform.rpc_types import Context
from services.usersvc.passwords import Passwords, login_rank
from services.usersvc.sessions import SessionRevoker
from services.usersvc.store import UserRow, UserStore, duplicate_email
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


def _current_password(value: str, purpose: str = "change the password") -> str:
    if not value:
        raise InvalidArgument.field("current_password", f"is required to {purpose}")
    return v.length(value, "current_password", max_len=MAX_PASSWORD)


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
    def __init__(
        self,
        store: UserStore,
        passwords: Passwords,
        sessions: SessionRevoker,
        *,
        signups: RateLimiter,
        password_changes: RateLimiter,
        email_changes: RateLimiter,
    ) -> None:
        self._store = store
        self._passwords = passwords
        self._sessions = sessions
        self._signups = signups
        self._password_changes = password_changes
        self._email_changes = email_changes
        # Concurrent GetUser calls share one query (see libs/platform/batching.py): under
        # load that saves a database round trip, a pool checkout and asyncpg's per-query
        # work for every call that joins a batch.
        self._reads: Coalescer[str, UserRow | None] = Coalescer(
            self._read_many, max_batch=MAX_BATCH_GET
        )

    async def CreateUser(  # noqa: N802 - gRPC method names
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        # Cheapest check first: a flood from one address is refused before any other work.
        wait = self._signups.take(client_address(context.peer()))
        if wait is not None:
            await abort_retry_later(context, "too many sign-ups from your address", wait)
        with v.Violations() as bad:
            email = bad.check(emails.parse, request.email)
            password = bad.check(_password, request.password)
            display_name = bad.check(_display_name, request.display_name)
        # A taken address is answered before hashing, so repeating it costs one indexed
        # read instead of an argon2 hash. This tells the caller nothing new: ALREADY_EXISTS
        # was already the answer, only later. The insert still enforces uniqueness.
        if await self._store.email_taken(email):
            raise duplicate_email(email.address)
        try:
            password_hash = await self._passwords.hash(password)
        except Overloaded as exc:
            await abort_overloaded(context, exc)
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
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        user_id = v.uuid_str(request.user_id, "user_id")
        require_user_or_service(user_id)
        return user_pb2.GetUserResponse(**_user_fields(await self._get(user_id)))

    async def UpdateUser(  # noqa: N802
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        has = request.HasField
        email: emails.Email | None = None
        password: str | None = None
        display_name: str | None = None
        current = ""
        with v.Violations() as bad:
            user_id = bad.check(v.uuid_str, request.user_id, "user_id")
            if has("email"):
                email = bad.check(emails.parse, request.email)
            if has("password"):
                password = bad.check(_password, request.password)
            if has("display_name"):
                display_name = bad.check(_display_name, request.display_name)
            if has("password"):
                current = bad.check(_current_password, request.current_password)
        principal = require_user_or_service(user_id)
        # A stolen access token must not be enough to take the account over: changing the
        # email (where password resets would go) needs the password too, unless a service
        # acts for the user.
        reauth = password is not None or (email is not None and not principal.is_service)
        if reauth and password is None:
            current = _current_password(request.current_password, "change the email")
        if email is not None:
            # Each change can answer ALREADY_EXISTS: limited like sign-ups.
            wait = self._signups.take(client_address(context.peer()))
            if wait is not None:
                await abort_retry_later(context, "too many email changes from your address", wait)
        if reauth:
            await self._prove_current(context, user_id, current)
        if email is not None:
            # Per account too, once the password is proven (so a thief cannot spend the
            # owner's changes): one account behind many addresses probes no faster.
            wait = self._email_changes.take(user_id)
            if wait is not None:
                await abort_retry_later(context, "too many email changes for this account", wait)
        password_hash = None
        if password is not None:
            password_hash = await self._hash(context, password)
        row = await self._store.update(
            user_id, email=email, display_name=display_name, password_hash=password_hash
        )
        if row is None:
            raise NotFound(f"user {user_id} does not exist")
        if password_hash is not None or email is not None:
            # Committed with the change; delivered now, or retried until authsvc confirms.
            await self._sessions.deliver_for(user_id)
        return user_pb2.UpdateUserResponse(user=_user_pb(row))

    async def _prove_current(self, context: Context, user_id: str, current: str) -> None:
        """PERMISSION_DENIED unless `current` is the account's password.

        Attempts are rate limited per (user, caller address), so a thief with a stolen access
        token can neither guess fast nor spend the owner's own attempts from elsewhere.
        """
        wait = self._password_changes.take(f"{user_id} {client_address(context.peer())}")
        if wait is not None:
            await abort_retry_later(context, "too many attempts at the current password", wait)
        stored = await self._store.password_hash(user_id)
        if stored is None:
            raise NotFound(f"user {user_id} does not exist")
        try:
            ok = await self._passwords.check_current(stored, current)
        except Overloaded as exc:
            await abort_overloaded(context, exc)
        if not ok:
            raise PermissionDenied("current_password is not the account's password")

    async def _hash(self, context: Context, password: str) -> str:
        try:
            return await self._passwords.hash(password)
        except Overloaded as exc:
            await abort_overloaded(context, exc)

    async def DeleteUser(  # noqa: N802
        self, request: user_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.DeleteUserResponse:
        user_id = v.uuid_str(request.user_id, "user_id")
        principal = require_user_or_service(user_id)
        if not principal.is_service:
            current = _current_password(request.current_password, "delete the account")
            await self._prove_current(context, user_id, current)
        if not await self._store.delete(user_id):
            raise NotFound(f"user {user_id} does not exist")
        await self._sessions.deliver_for(user_id)
        return user_pb2.DeleteUserResponse(success=True)

    async def ListUsers(  # noqa: N802
        self, request: user_pb2.ListUsersRequest, context: Context
    ) -> user_pb2.ListUsersResponse:
        # Listing every account is an operator's job, done through a service identity.
        require_service()
        size = v.page_size(request.page_size)
        after = pagetokens.page_start(request.page_token)
        rows, next_token = pagetokens.split_page(await self._store.list(size + 1, after), size)
        return user_pb2.ListUsersResponse(
            users=[_user_pb(r) for r in rows], next_page_token=next_token
        )

    async def BatchGetUsers(  # noqa: N802
        self, request: user_pb2.BatchGetUsersRequest, context: Context
    ) -> user_pb2.BatchGetUsersResponse:
        require_service()
        if not request.user_ids:
            raise InvalidArgument.field("user_ids", "must name at least one user")
        if len(request.user_ids) > MAX_BATCH_GET:
            raise InvalidArgument.field(
                "user_ids", f"must name at most {MAX_BATCH_GET} users; split the request"
            )
        with v.Violations() as bad:
            user_ids = [
                bad.check(v.uuid_str, u, f"user_ids[{i}]") for i, u in enumerate(request.user_ids)
            ]
        found = await self._read_many(list(dict.fromkeys(user_ids)), db.query_timeout())
        rows = {u: row for u, row in found.items() if row is not None}
        missing = [u for u in found if u not in rows]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise NotFound(f"user {missing[0]} does not exist{more}")
        return user_pb2.BatchGetUsersResponse(users=[_user_pb(rows[u]) for u in user_ids])

    async def VerifyCredentials(  # noqa: N802
        self, request: user_pb2.VerifyCredentialsRequest, context: Context
    ) -> user_pb2.VerifyCredentialsResponse:
        require_service(VERIFY_CREDENTIALS_CALLERS)
        with v.Violations() as bad:
            email = bad.check(emails.parse, request.email)
            password = bad.check(_required, request.password, "password", MAX_PASSWORD)
        creds = await self._store.credentials(email)
        try:
            ok = await self._passwords.verify(
                creds.password_hash if creds else None,
                password,
                rank=login_rank(
                    trusted_device=request.trusted_device,
                    known_address=request.known_address,
                    recent_attempts=request.caller_recent_attempts,
                ),
            )
        except Overloaded as exc:
            await abort_overloaded(context, exc)
        if not ok or creds is None:
            raise Unauthenticated(BAD_CREDENTIALS)
        return user_pb2.VerifyCredentialsResponse(
            user_id=creds.id, email=creds.email, credentials_version=creds.credentials_version
        )
