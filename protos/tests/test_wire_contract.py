"""Guards the wire contract that existing clients (the original Go system) depend on.

Field numbers and types of the seed's messages must never change; additions are fine.
"""

import pytest
from google.protobuf.descriptor import FieldDescriptor as F

from auth.v1 import auth_pb2, auth_pb2_grpc
from payment.v1 import payment_pb2, payment_pb2_grpc
from user.v1 import user_pb2, user_pb2_grpc

TS = "google.protobuf.Timestamp"

SEED_FIELDS = [
    (user_pb2.CreateUserRequest, {"email": (1, F.TYPE_STRING), "password": (2, F.TYPE_STRING)}),
    (
        user_pb2.CreateUserResponse,
        {"user_id": (1, F.TYPE_STRING), "email": (2, F.TYPE_STRING), "created_at": (3, TS)},
    ),
    (user_pb2.GetUserRequest, {"user_id": (1, F.TYPE_STRING)}),
    (
        user_pb2.GetUserResponse,
        {
            "user_id": (1, F.TYPE_STRING),
            "email": (2, F.TYPE_STRING),
            "created_at": (3, TS),
            "updated_at": (4, TS),
        },
    ),
    (
        user_pb2.UpdateUserRequest,
        {
            "user_id": (1, F.TYPE_STRING),
            "email": (2, F.TYPE_STRING),
            "password": (3, F.TYPE_STRING),
        },
    ),
    (user_pb2.DeleteUserRequest, {"user_id": (1, F.TYPE_STRING)}),
    (user_pb2.DeleteUserResponse, {"success": (1, F.TYPE_BOOL)}),
    (
        payment_pb2.CreatePaymentRequest,
        {"user_id": (1, F.TYPE_STRING), "amount": (2, F.TYPE_INT64)},
    ),
    (payment_pb2.CreatePaymentResponse, {"payment_id": (1, F.TYPE_STRING)}),
    (auth_pb2.LoginRequest, {"email": (1, F.TYPE_STRING), "password": (2, F.TYPE_STRING)}),
    (auth_pb2.LoginResponse, {"token": (1, F.TYPE_STRING)}),
]


@pytest.mark.parametrize(
    ("message", "fields"), SEED_FIELDS, ids=lambda v: getattr(v, "__name__", "")
)
def test_seed_fields_keep_their_numbers_and_types(message, fields):
    by_name = message.DESCRIPTOR.fields_by_name
    for name, (number, kind) in fields.items():
        field = by_name[name]
        assert field.number == number, f"{message.__name__}.{name} was renumbered"
        if isinstance(kind, str):
            assert field.message_type.full_name == kind
        else:
            assert field.type == kind


def test_update_user_fields_track_presence():
    # UpdateUser changes only the fields a caller sets, so presence must be on the wire.
    request = user_pb2.UpdateUserRequest(user_id="x")
    assert not request.HasField("email")
    assert not request.HasField("password")


@pytest.mark.parametrize(
    ("stub", "service", "methods"),
    [
        (
            user_pb2_grpc.UserServiceStub,
            "user.v1.UserService",
            {"CreateUser", "GetUser", "UpdateUser", "DeleteUser"},
        ),
        (payment_pb2_grpc.PaymentServiceStub, "payment.v1.PaymentService", {"CreatePayment"}),
        (auth_pb2_grpc.AuthServiceStub, "auth.v1.AuthService", {"Login"}),
    ],
)
def test_seed_services_and_methods_exist(stub, service, methods):
    module = {"user": user_pb2, "payment": payment_pb2, "auth": auth_pb2}[service.split(".")[0]]
    descriptor = module.DESCRIPTOR.services_by_name[service.split(".")[-1]]
    assert descriptor.full_name == service
    assert methods <= set(descriptor.methods_by_name)
    assert stub is not None
