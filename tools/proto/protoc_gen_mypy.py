"""protoc-gen-mypy: typed stubs (.pyi) for the messages (mypy-protobuf)."""

from mypy_protobuf.main import main

if __name__ == "__main__":
    main()
