"""oci_load for the offline stand-in: a docker-load tarball and a `bazel run` loader."""

def _rlocation(ctx, file):
    if file.short_path.startswith("../"):
        return file.short_path[3:]
    return ctx.workspace_name + "/" + file.short_path

def _impl(ctx):
    tarball = ctx.actions.declare_file(ctx.label.name + "/tarball.tar")
    args = ctx.actions.args()
    args.add("load")
    args.add("--image", ctx.file.image.path)
    args.add("--out", tarball)
    args.add_all(ctx.attr.repo_tags, before_each = "--tag")
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = [ctx.file.image],
        outputs = [tarball],
        mnemonic = "OCITarball",
        progress_message = "Writing image tarball %{label}",
    )

    # Like rules_oci, `bazel run` writes the tarball at run time, so `bazel build` does not
    # put a copy of every image into the cache.
    loader = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.expand_template(
        template = ctx.file._template,
        output = loader,
        is_executable = True,
        substitutions = {
            "{{image}}": _rlocation(ctx, ctx.file.image),
            "{{tags}}": " ".join(["--tag '%s'" % t for t in ctx.attr.repo_tags]),
            "{{tool}}": _rlocation(ctx, ctx.executable._tool),
        },
    )
    runfiles = ctx.runfiles([ctx.file.image]).merge(ctx.attr._tool[DefaultInfo].default_runfiles)
    return [
        DefaultInfo(executable = loader, runfiles = runfiles),
        OutputGroupInfo(tarball = depset([tarball])),
    ]

oci_load_rule = rule(
    implementation = _impl,
    executable = True,
    attrs = {
        "format": attr.string(default = "docker", values = ["docker", "oci"]),
        "image": attr.label(mandatory = True, allow_single_file = True),
        "repo_tags": attr.string_list(mandatory = True),
        "_template": attr.label(default = "//oci/private:load.sh.tpl", allow_single_file = True),
        "_tool": attr.label(default = "//oci/private:image_tool", executable = True, cfg = "target"),
    },
)
