"""oci_image for the offline stand-in: the layout is written by image_tool.py."""

def _impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    config = ctx.actions.declare_file(ctx.label.name + ".config.json")
    ctx.actions.write(config, json.encode({
        "annotations": ctx.attr.annotations,
        "architecture": ctx.attr.architecture,
        "cmd": ctx.attr.cmd,
        "entrypoint": ctx.attr.entrypoint,
        "env": ctx.attr.env,
        "exposed_ports": ctx.attr.exposed_ports,
        "labels": ctx.attr.labels,
        "os": ctx.attr.os,
        "user": ctx.attr.user,
        "variant": ctx.attr.variant,
        "volumes": ctx.attr.volumes,
        "workdir": ctx.attr.workdir,
    }))
    args = ctx.actions.args()
    args.add("image")
    args.add("--out", out.path)
    args.add("--config", config)
    inputs = [config] + ctx.files.tars
    if ctx.attr.base:
        base = ctx.attr.base[DefaultInfo].files.to_list()
        if len(base) != 1:
            fail("base must be one oci_image (an OCI layout directory), got %s" % base)
        args.add("--base", base[0].path)
        inputs += base
    args.add_all(ctx.files.tars, before_each = "--tar")
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "OCIImage",
        progress_message = "Building OCI image %{label}",
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles([out]))]

oci_image_rule = rule(
    implementation = _impl,
    attrs = {
        "annotations": attr.string_dict(),
        # Empty: the base's, as rules_oci does.
        "architecture": attr.string(),
        "base": attr.label(allow_files = True),
        "cmd": attr.string_list(),
        "entrypoint": attr.string_list(),
        "env": attr.string_dict(),
        "exposed_ports": attr.string_list(),
        "labels": attr.string_dict(),
        "os": attr.string(),
        "tars": attr.label_list(allow_files = True),
        "user": attr.string(),
        "variant": attr.string(),
        "volumes": attr.string_list(),
        "workdir": attr.string(),
        "_tool": attr.label(default = "//oci/private:image_tool", executable = True, cfg = "exec"),
    },
)

def _index_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    args = ctx.actions.args()
    args.add("index")
    args.add("--out", out.path)
    args.add_all(ctx.files.images, before_each = "--image", expand_directories = False)
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = ctx.files.images,
        outputs = [out],
        mnemonic = "OCIIndex",
        progress_message = "Building OCI image index %{label}",
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles([out]))]

oci_image_index_rule = rule(
    implementation = _index_impl,
    attrs = {
        "images": attr.label_list(mandatory = True, allow_files = True),
        "_tool": attr.label(default = "//oci/private:image_tool", executable = True, cfg = "exec"),
    },
)
