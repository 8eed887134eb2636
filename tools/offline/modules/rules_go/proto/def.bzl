"""go_proto_library with upstream's name and the attributes the repository uses: Debian's
protoc runs each compiler's plugin (compiler.bzl) into one directory, one Go package."""

load("@rules_proto//proto:defs.bzl", "ProtoInfo")
load("//go:def.bzl", "go_sources")
load(":compiler.bzl", "GoProtoCompilerInfo")

def _go_proto_library_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name + "_go")
    infos = [p[ProtoInfo] for p in ctx.attr.protos]
    roots = depset(transitive = [i.transitive_proto_path for i in infos]).to_list()
    sources = depset(transitive = [i.transitive_sources for i in infos])
    files = []
    for info in infos:
        root = info.proto_source_root
        for src in info.direct_sources:
            files.append(src.path.removeprefix(root + "/") if root not in ("", ".") else src.path)

    # The protos name no Go package (protos/README.md): M options give this one.
    mapping = ["M%s=%s" % (f, ctx.attr.importpath) for f in files]
    args = ["-I" + r for r in roots] + ["-I/usr/include"]
    plugins = []
    for i, compiler in enumerate(ctx.attr.compilers):
        info = compiler[GoProtoCompilerInfo]
        plugins.append(info.plugin)
        flag = "gen%d" % i

        # module=: the files land in the output directory itself.
        options = mapping + ["module=" + ctx.attr.importpath] + info.options
        args += [
            "--plugin=protoc-gen-%s=%s" % (flag, info.plugin.path),
            "--%s_out=%s" % (flag, out.path),
            "--%s_opt=%s" % (flag, ",".join(options)),
        ]
    ctx.actions.run(
        executable = "/usr/bin/protoc",
        arguments = args + files,
        inputs = sources,
        tools = plugins,
        outputs = [out],
        mnemonic = "GoProtoc",
        progress_message = "Generating Go for %{label} (Debian's protoc and plugins)",
        use_default_shell_env = True,
    )
    return [
        go_sources(ctx.attr.importpath, [out], ctx.attr.deps),
        DefaultInfo(files = depset([out])),
    ]

go_proto_library = rule(
    implementation = _go_proto_library_impl,
    attrs = {
        "compilers": attr.label_list(providers = [GoProtoCompilerInfo]),
        "deps": attr.label_list(),
        "importpath": attr.string(mandatory = True),
        "protos": attr.label_list(providers = [ProtoInfo]),
    },
)
