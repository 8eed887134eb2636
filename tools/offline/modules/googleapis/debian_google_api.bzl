"""A repository of google/api's annotations.proto and http.proto as Debian installs them.

Debian's python3-googleapis-common-protos ships the .proto files beside the generated
modules; the repository's protos import only these two (google.api.http).
"""

_DIR = "/usr/lib/python3/dist-packages/google/api"

_BUILD = """load("@rules_proto//proto:defs.bzl", "proto_library")

package(default_visibility = ["//visibility:public"])

proto_library(
    name = "http_proto",
    srcs = ["http.proto"],
)

proto_library(
    name = "annotations_proto",
    srcs = ["annotations.proto"],
    deps = [
        ":http_proto",
        "@protobuf//:descriptor_proto",
    ],
)
"""

def _debian_google_api_impl(rctx):
    for name in ["annotations.proto", "http.proto"]:
        source = rctx.path(_DIR + "/" + name)
        if not source.exists:
            fail("debian_google_api: %s is missing (is python3-googleapis-common-protos installed?)" % source)
        rctx.symlink(source, "google/api/" + name)
    rctx.file("google/api/BUILD.bazel", _BUILD)
    rctx.file("BUILD.bazel", "")

debian_google_api = repository_rule(implementation = _debian_google_api_impl)
