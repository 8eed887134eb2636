"""go_proto_compiler with upstream's name and the attributes the repository uses: a protoc
plugin program and its options, for go_proto_library (def.bzl)."""

GoProtoCompilerInfo = provider(
    doc = "A protoc plugin for Go code and the options it is given.",
    fields = {"plugin": "File, the plugin program", "options": "list of strings"},
)

def _go_proto_compiler_impl(ctx):
    return [GoProtoCompilerInfo(plugin = ctx.executable.plugin, options = ctx.attr.options)]

go_proto_compiler = rule(
    implementation = _go_proto_compiler_impl,
    attrs = {
        # What the generated code imports; Debian's GOPATH has it (go/def.bzl).
        "deps": attr.label_list(),
        "options": attr.string_list(),
        "plugin": attr.label(executable = True, cfg = "exec", mandatory = True),
        "suffix": attr.string(),
    },
)
