"""microctl: talk to the running services over gRPC (generated stubs only, no service code).

Addresses default to each service's localhost port (services/inventory.bzl); override with
--usersvc/--paymentsvc/--authsvc or MICRO_USERSVC_ADDR / MICRO_PAYMENTSVC_ADDR /
MICRO_AUTHSVC_ADDR. Every call except
create-user and login needs the access token that `login` prints: pass --token or set
MICRO_TOKEN (`export MICRO_TOKEN=$(microctl login ... --token-only)`). With TLS on the
services, pass --ca-file (MICRO_TLS_CA_FILE).

`call ADDRESS package.Service/Method JSON` calls any method of any running service through
server reflection, with the token when one is given:
  microctl call localhost:50054 ledger.v1.LedgerService/CreateItem '{"name": "first"}'
  microctl call localhost:50054 grpc.health.v1.Health/Check '{"service": ""}'
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format

from auth.v1 import auth_pb2, auth_pb2_grpc
from libs import inventory
from payment.v1 import payment_pb2, payment_pb2_grpc
from tools.cli import dynamic
from user.v1 import user_pb2, user_pb2_grpc


def _addr(args: argparse.Namespace, name: str) -> str:
    return str(getattr(args, name))


def _channel(args: argparse.Namespace, name: str) -> grpc.Channel:
    return _channel_to(args, _addr(args, name))


def _channel_to(args: argparse.Namespace, address: str) -> grpc.Channel:
    if args.ca_file:
        with open(args.ca_file, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(address, creds)
    return grpc.insecure_channel(address)


def _auth(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    if not args.token:
        raise SystemExit(
            "error: this command needs a token: run `login`, then pass --token or set MICRO_TOKEN"
        )
    return (("authorization", f"Bearer {args.token}"),)


def create_user(args: argparse.Namespace) -> Any:
    with _channel(args, "usersvc") as ch:
        return user_pb2_grpc.UserServiceStub(ch).CreateUser(
            user_pb2.CreateUserRequest(
                email=args.email, password=args.password, display_name=args.display_name
            ),
            timeout=args.timeout,
        )


def get_user(args: argparse.Namespace) -> Any:
    with _channel(args, "usersvc") as ch:
        return user_pb2_grpc.UserServiceStub(ch).GetUser(
            user_pb2.GetUserRequest(user_id=args.user_id),
            timeout=args.timeout,
            metadata=_auth(args),
        )


def login(args: argparse.Namespace) -> Any:
    with _channel(args, "authsvc") as ch:
        resp = auth_pb2_grpc.AuthServiceStub(ch).Login(
            auth_pb2.LoginRequest(email=args.email, password=args.password), timeout=args.timeout
        )
    if args.token_only:
        return resp.token
    return resp


def create_payment(args: argparse.Namespace) -> Any:
    with _channel(args, "paymentsvc") as ch:
        return payment_pb2_grpc.PaymentServiceStub(ch).CreatePayment(
            payment_pb2.CreatePaymentRequest(
                user_id=args.user_id,
                amount=args.amount,
                currency=args.currency,
                idempotency_key=args.idempotency_key,
                description=args.description,
            ),
            timeout=args.timeout,
            metadata=_auth(args),
        )


def list_payments(args: argparse.Namespace) -> Any:
    with _channel(args, "paymentsvc") as ch:
        return payment_pb2_grpc.PaymentServiceStub(ch).ListPayments(
            payment_pb2.ListPaymentsRequest(
                user_id=args.user_id, page_size=args.page_size, page_token=args.page_token
            ),
            timeout=args.timeout,
            metadata=_auth(args),
        )


def call(args: argparse.Namespace) -> Any:
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    with _channel_to(args, args.address) as ch:
        return dynamic.call(ch, args.method, args.json, metadata=metadata, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="microctl", description=__doc__.splitlines()[0])
    env = os.environ.get
    for name in ("usersvc", "paymentsvc", "authsvc"):
        default = inventory.service(name).local_address
        p.add_argument(f"--{name}", default=env(f"MICRO_{name.upper()}_ADDR", default))
    p.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds")
    p.add_argument(
        "--token", default=env("MICRO_TOKEN", ""), help="access token from `login` (MICRO_TOKEN)"
    )
    p.add_argument(
        "--ca-file", default=env("MICRO_TLS_CA_FILE", ""), help="CA to trust: turns TLS on"
    )
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(
        name: str, fn: Callable[[argparse.Namespace], Any], help_: str
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.set_defaults(func=fn)
        return sp

    sp = cmd("create-user", create_user, "sign a user up")
    sp.add_argument("--email", required=True)
    sp.add_argument("--password", required=True)
    sp.add_argument("--display-name", default="")
    sp = cmd("get-user", get_user, "show a user")
    sp.add_argument("--user-id", required=True)
    sp = cmd("login", login, "get an access and refresh token")
    sp.add_argument("--email", required=True)
    sp.add_argument("--password", required=True)
    sp.add_argument("--token-only", action="store_true", help="print only the access token")
    sp = cmd("create-payment", create_payment, "record a payment")
    sp.add_argument("--user-id", required=True)
    sp.add_argument("--amount", type=int, required=True, help="minor units, e.g. cents")
    sp.add_argument("--currency", default="")
    sp.add_argument("--idempotency-key", default="")
    sp.add_argument("--description", default="")
    sp = cmd("list-payments", list_payments, "list a user's payments, newest first")
    sp.add_argument("--user-id", required=True)
    sp.add_argument("--page-size", type=int, default=0)
    sp.add_argument("--page-token", default="")
    sp = cmd("call", call, "call any method by name through server reflection (JSON in, out)")
    sp.add_argument("address", help="host:port of the service, e.g. localhost:50054")
    sp.add_argument("method", help="package.Service/Method, e.g. grpc.health.v1.Health/Check")
    sp.add_argument("json", nargs="?", default="{}", help="the request as JSON (default {})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        resp = args.func(args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except (dynamic.UnknownMethodError, json_format.ParseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if isinstance(resp, str):
        print(resp)
    else:
        print(json_format.MessageToJson(resp, preserving_proto_field_name=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
