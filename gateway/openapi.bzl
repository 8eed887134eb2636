"""The OpenAPI (Swagger 2.0) document of every public RPC, from the protos' HTTP mapping."""

load("@micro_proto_rules//:compile.bzl", "proto_compile_rule")

# protoc-gen-openapiv2 over all the protos at once, merged into one `<name>.swagger.json`
# (rules_proto_grpc_grpc_gateway's combined plugin: allow_merge, merge_file_name=<name>).
openapi_compile = proto_compile_rule(
    [Label("@rules_proto_grpc_grpc_gateway//:openapiv2_combined_plugin")],
    # Built from source online (a go_binary), so for the machine that runs it.
    plugins_cfg = "exec",
)
