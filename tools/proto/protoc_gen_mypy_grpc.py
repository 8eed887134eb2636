"""protoc-gen-mypy_grpc: typed stubs (.pyi) for gRPC stubs and servicers (mypy-protobuf)."""

from mypy_protobuf.main import grpc

if __name__ == "__main__":
    grpc()
