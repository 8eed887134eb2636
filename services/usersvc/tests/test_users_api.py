from __future__ import annotations

import asyncio
import base64
import json
import uuid

import grpc
import pytest

from libs.platform.testing.batches import record_batches
from libs.platform.testing.grpc_errors import field_violations
from user.v1 import user_pb2

PASSWORD = "correct horse"


async def create(stub, email: str = "ada@example.com", password: str = PASSWORD, name: str = ""):
    return await stub.CreateUser(
        user_pb2.CreateUserRequest(email=email, password=password, display_name=name)
    )


async def expect_error(coro, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    assert info.value.code() == code, info.value.details()
    return info.value


async def test_create_and_get_user(stub) -> None:
    created = await create(stub, "  Ada@Example.com ", name="Ada")
    assert created.email == "Ada@Example.com"
    assert created.display_name == "Ada"
    assert uuid.UUID(created.user_id).version == 4
    got = await stub.GetUser(user_pb2.GetUserRequest(user_id=created.user_id))
    assert (got.user_id, got.email, got.display_name) == (created.user_id, created.email, "Ada")
    assert got.created_at == created.created_at


async def test_duplicate_email_case_insensitive(stub) -> None:
    await create(stub, "bob@example.com")
    err = await expect_error(create(stub, " BOB@Example.COM"), grpc.StatusCode.ALREADY_EXISTS)
    assert "already exists" in err.details()


async def test_concurrent_duplicate_create_makes_one_user(stub, usersvc) -> None:
    results = await asyncio.gather(
        *(create(stub, f"{'RACE' if i % 2 else 'race'}@example.com") for i in range(10)),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 1
    assert all(
        isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.ALREADY_EXISTS
        for e in errors
    ), errors
    count = await usersvc.pool.fetchval(
        "SELECT count(*) FROM users WHERE lower(email) = 'race@example.com'"
    )
    assert count == 1


@pytest.mark.parametrize(
    ("email", "password", "field", "fragment"),
    [
        ("", PASSWORD, "email", "required"),
        ("not-an-email", PASSWORD, "email", "not a valid email"),
        ("a@b.c" + "x" * 260, PASSWORD, "email", "at most 254"),
        ("ok@example.com", "", "password", "at least 8"),
        ("ok@example.com", "short", "password", "at least 8"),
        ("ok@example.com", "x" * 129, "password", "at most 128"),
    ],
)
async def test_create_user_invalid(stub, email, password, field, fragment) -> None:
    err = await expect_error(create(stub, email, password), grpc.StatusCode.INVALID_ARGUMENT)
    violations = field_violations(err)
    assert field in violations
    assert fragment in violations[field]
    assert fragment in err.details()


async def test_create_user_reports_all_violations(stub) -> None:
    err = await expect_error(create(stub, "nope", "short"), grpc.StatusCode.INVALID_ARGUMENT)
    assert set(field_violations(err)) == {"email", "password"}


async def test_password_is_stored_as_argon2id(stub, usersvc) -> None:
    created = await create(stub)
    stored = await usersvc.pool.fetchval(
        "SELECT password_hash FROM users WHERE id = $1", uuid.UUID(created.user_id)
    )
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_get_user_errors(stub) -> None:
    err = await expect_error(
        stub.GetUser(user_pb2.GetUserRequest(user_id="nope")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "user_id" in field_violations(err)
    missing = str(uuid.uuid4())
    err = await expect_error(
        stub.GetUser(user_pb2.GetUserRequest(user_id=missing)), grpc.StatusCode.NOT_FOUND
    )
    assert missing in err.details()


async def test_update_only_present_fields(stub) -> None:
    created = await create(stub, name="Ada")
    before = await stub.GetUser(user_pb2.GetUserRequest(user_id=created.user_id))
    resp = await stub.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=created.user_id, display_name="Countess")
    )
    assert resp.user.display_name == "Countess"
    assert resp.user.email == "ada@example.com"
    assert resp.user.updated_at.ToDatetime() > before.updated_at.ToDatetime()
    assert resp.user.created_at == before.created_at
    # The password did not change.
    ok = await stub.VerifyCredentials(
        user_pb2.VerifyCredentialsRequest(email="ada@example.com", password=PASSWORD)
    )
    assert ok.user_id == created.user_id


async def test_update_email_and_password(stub) -> None:
    created = await create(stub)
    await stub.UpdateUser(
        user_pb2.UpdateUserRequest(
            user_id=created.user_id,
            email=" new@example.com",
            password="new password!",
            current_password=PASSWORD,
        )
    )
    ok = await stub.VerifyCredentials(
        user_pb2.VerifyCredentialsRequest(email="new@example.com", password="new password!")
    )
    assert ok.user_id == created.user_id
    await expect_error(
        stub.VerifyCredentials(
            user_pb2.VerifyCredentialsRequest(email="new@example.com", password=PASSWORD)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_update_errors(stub) -> None:
    a = await create(stub, "a@example.com")
    await create(stub, "b@example.com")
    await expect_error(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=a.user_id, email="B@example.com")),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    err = await expect_error(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=a.user_id, password="x")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "password" in field_violations(err)
    err = await expect_error(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=a.user_id, display_name="x" * 201)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "display_name" in field_violations(err)
    await expect_error(
        stub.UpdateUser(user_pb2.UpdateUserRequest(user_id=str(uuid.uuid4()), display_name="x")),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_delete_user(stub) -> None:
    created = await create(stub)
    resp = await stub.DeleteUser(user_pb2.DeleteUserRequest(user_id=created.user_id))
    assert resp.success
    await expect_error(
        stub.GetUser(user_pb2.GetUserRequest(user_id=created.user_id)), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        stub.DeleteUser(user_pb2.DeleteUserRequest(user_id=created.user_id)),
        grpc.StatusCode.NOT_FOUND,
    )
    # The email is free again.
    await create(stub)


async def test_concurrent_get_user_calls_share_queries(stub, monkeypatch) -> None:
    from services.usersvc.store import UserStore

    users = [await create(stub, f"c{i}@example.com", name=f"C{i}") for i in range(5)]
    missing = str(uuid.uuid4())
    queries = record_batches(monkeypatch, UserStore, "get_many")
    ids = [users[i % 5].user_id for i in range(40)] + [missing]
    results = await asyncio.gather(
        *(stub.GetUser(user_pb2.GetUserRequest(user_id=u)) for u in ids), return_exceptions=True
    )
    # Every caller gets its own user, and only the missing one fails.
    for uid, got in zip(ids[:-1], results[:-1], strict=True):
        assert not isinstance(got, BaseException), got
        assert got.user_id == uid
        assert got.display_name == next(u.display_name for u in users if u.user_id == uid)
    assert isinstance(results[-1], grpc.aio.AioRpcError)
    assert results[-1].code() == grpc.StatusCode.NOT_FOUND
    assert missing in results[-1].details()
    assert len(queries) < 10, queries
    assert all(len(q) == len(set(q)) for q in queries)  # each id asked once per query


async def test_batch_get_users_in_request_order(stub) -> None:
    a, b = [(await create(stub, f"b{i}@example.com")).user_id for i in range(2)]
    resp = await stub.BatchGetUsers(user_pb2.BatchGetUsersRequest(user_ids=[b, a, b]))
    assert [u.user_id for u in resp.users] == [b, a, b]
    assert [u.email for u in resp.users] == ["b1@example.com", "b0@example.com", "b1@example.com"]
    # Ids are matched in canonical form, whatever case the caller used.
    upper = await stub.BatchGetUsers(user_pb2.BatchGetUsersRequest(user_ids=[a.upper()]))
    assert [u.user_id for u in upper.users] == [a]


async def test_batch_get_users_errors(stub) -> None:
    known = (await create(stub)).user_id
    missing = [str(uuid.uuid4()) for _ in range(2)]
    err = await expect_error(
        stub.BatchGetUsers(user_pb2.BatchGetUsersRequest(user_ids=[known, *missing])),
        grpc.StatusCode.NOT_FOUND,
    )
    assert missing[0] in err.details() and "1 more" in err.details()
    err = await expect_error(
        stub.BatchGetUsers(user_pb2.BatchGetUsersRequest(user_ids=[known, "nope", ""])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(field_violations(err)) == {"user_ids[1]", "user_ids[2]"}
    err = await expect_error(
        stub.BatchGetUsers(user_pb2.BatchGetUsersRequest()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "at least one" in field_violations(err)["user_ids"]
    err = await expect_error(
        stub.BatchGetUsers(user_pb2.BatchGetUsersRequest(user_ids=[known] * 101)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "at most 100" in field_violations(err)["user_ids"]


async def test_list_users_pages_through_everything(stub) -> None:
    ids = [(await create(stub, f"u{i}@example.com")).user_id for i in range(7)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = await stub.ListUsers(user_pb2.ListUsersRequest(page_size=3, page_token=token))
        pages += 1
        seen += [u.user_id for u in resp.users]
        token = resp.next_page_token
        if not token:
            break
    assert seen == ids
    assert pages == 3


async def test_list_users_default_and_max_page_size(stub) -> None:
    for i in range(22):
        await create(stub, f"p{i}@example.com")
    resp = await stub.ListUsers(user_pb2.ListUsersRequest())
    assert len(resp.users) == 20
    assert resp.next_page_token
    resp = await stub.ListUsers(user_pb2.ListUsersRequest(page_size=1000))
    assert len(resp.users) == 22
    assert resp.next_page_token == ""


@pytest.mark.parametrize("token", ["garbage!", "eyJ4IjoxfQ", "x" * 600])
async def test_list_users_bad_token(stub, token) -> None:
    err = await expect_error(
        stub.ListUsers(user_pb2.ListUsersRequest(page_token=token)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "page_token" in field_violations(err)


async def test_list_users_crafted_token_is_invalid_argument(stub) -> None:
    """A real token with its timestamp moved to where UTC cannot hold it (the driver
    converts to UTC): once an INTERNAL error, now refused before any query."""
    for i in range(2):
        await create(stub, f"t{i}@example.com")
    token = (await stub.ListUsers(user_pb2.ListUsersRequest(page_size=1))).next_page_token
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    payload["t"] = "0001-01-01T00:00:00+23:59"
    crafted = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    err = await expect_error(
        stub.ListUsers(user_pb2.ListUsersRequest(page_token=crafted)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "not a valid page token" in field_violations(err)["page_token"]


async def test_list_users_negative_page_size(stub) -> None:
    await expect_error(
        stub.ListUsers(user_pb2.ListUsersRequest(page_size=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_verify_credentials(stub) -> None:
    created = await create(stub, "Eve@Example.com")
    ok = await stub.VerifyCredentials(
        user_pb2.VerifyCredentialsRequest(email=" eve@example.com ", password=PASSWORD)
    )
    assert ok.user_id == created.user_id
    assert ok.email == "Eve@Example.com"
    wrong = await expect_error(
        stub.VerifyCredentials(
            user_pb2.VerifyCredentialsRequest(email="eve@example.com", password="wrong password")
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    unknown = await expect_error(
        stub.VerifyCredentials(
            user_pb2.VerifyCredentialsRequest(email="nobody@example.com", password=PASSWORD)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert wrong.details() == unknown.details() == "invalid email or password"


async def test_verify_credentials_empty_fields(stub) -> None:
    err = await expect_error(
        stub.VerifyCredentials(user_pb2.VerifyCredentialsRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(field_violations(err)) == {"email", "password"}


async def test_health_and_reflection(usersvc) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{usersvc.port}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for name in ("", "user.v1.UserService"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
