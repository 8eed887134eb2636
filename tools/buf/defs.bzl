"""proto_import_tree: proto_library sources laid out by their import paths, for buf."""

# rules_proto re-exports protobuf's ProtoInfo at 7.1.0 (online) and 6.0.0 (Debian's).
load("@rules_proto//proto:defs.bzl", "ProtoInfo")

def _proto_import_tree_impl(ctx):
    outputs = []
    for dep in ctx.attr.protos:
        info = dep[ProtoInfo]
        root = info.proto_source_root
        for source in info.direct_sources:
            path = source.path
            if root not in ("", "."):
                path = path.removeprefix(root + "/")
            out = ctx.actions.declare_file(ctx.label.name + "/" + path)
            ctx.actions.symlink(output = out, target_file = source)
            outputs.append(out)
    files = depset(outputs)
    return [DefaultInfo(files = files, runfiles = ctx.runfiles(transitive_files = files))]

proto_import_tree = rule(
    implementation = _proto_import_tree_impl,
    doc = "Links the .proto files of `protos` under NAME/, each at its import path " +
          "(google/api/http.proto as NAME/google/api/http.proto): a directory buf reads " +
          "as a module, so protos that import these resolve without the Buf Schema Registry.",
    attrs = {
        "protos": attr.label_list(providers = [ProtoInfo]),
    },
)
