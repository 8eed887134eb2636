"""Ending a user's sessions in authsvc after a password change or a deletion.

The request is written to users_db (session_revocations) in the same transaction as the
change itself (store.py), then delivered to authsvc's RevokeUserSessions with usersvc's
service identity: at once by the call that made the change, and again every
`retry_seconds` by a background task until authsvc confirms. So a change that commits
always ends the sessions, even if authsvc is down at that moment or this process dies
right after the commit. Delivering late or twice is harmless: authsvc ends only sessions
opened with an older password (or all of a deleted user's).
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs.platform import clients
from services.usersvc.store import Revocation, UserStore

log = logging.getLogger(__name__)

BATCH = 100


class SessionRevoker:
    def __init__(
        self,
        store: UserStore,
        authsvc: auth_pb2_grpc.AuthServiceAsyncStub,
        *,
        timeout: float,
        retry_seconds: float,
    ) -> None:
        self._store = store
        self._authsvc = authsvc
        self._timeout = timeout
        self._retry_seconds = retry_seconds

    async def _send(self, request: Revocation) -> bool:
        try:
            await clients.call(
                self._authsvc.RevokeUserSessions,
                auth_pb2.RevokeUserSessionsRequest(
                    user_id=request.user_id,
                    min_credentials_version=request.min_credentials_version,
                    user_deleted=request.user_deleted,
                ),
                dependency="authsvc",
                deadline=self._timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - kept in the outbox and retried; say why
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else repr(exc)
            log.warning(
                "could not end the user's sessions in authsvc yet; will retry",
                extra={"user_id": request.user_id, "error": detail},
            )
            return False
        await self._store.revocation_delivered(request)
        return True

    async def deliver_for(self, user_id: str) -> bool:
        """Deliver `user_id`'s pending request now; False if it stays pending.

        Never raises: the change it follows has committed, so the caller must hear that it
        succeeded; what is left pending is delivered by run().
        """
        try:
            pending = await self._store.pending_revocations(1, user_id)
            return all([await self._send(r) for r in pending])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning(
                "pending session revocation not delivered yet; will retry",
                extra={"user_id": user_id, "error": repr(exc)},
            )
            return False

    async def deliver_pending(self) -> int:
        """One pass over every pending request; returns how many are still pending."""
        left = 0
        for request in await self._store.pending_revocations(BATCH):
            if not await self._send(request):
                left += 1
        return left

    async def run(self) -> None:
        """Retry pending requests forever (cancelled when the service stops)."""
        while True:
            await asyncio.sleep(self._retry_seconds)
            try:
                await self.deliver_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be down: next pass
                log.warning("pending session revocations not checked", extra={"error": repr(exc)})
