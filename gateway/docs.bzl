"""swagger_ui: the Swagger UI page the gateway serves at /docs/, as one directory."""

def _swagger_ui_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    wanted = {f.basename: f for f in ctx.files.dist if f.basename in ctx.attr.dist_files}
    missing = [name for name in ctx.attr.dist_files if name not in wanted]
    if missing:
        fail("swagger_ui: swagger-ui-dist has no %s" % ", ".join(missing))
    files = wanted.values() + ctx.files.srcs
    ctx.actions.run_shell(
        inputs = files,
        outputs = [out],
        command = 'cp "$@" "%s/"' % out.path,
        arguments = [f.path for f in files],
        mnemonic = "SwaggerUi",
        progress_message = "Assembling the Swagger UI page %{label}",
    )
    return [DefaultInfo(files = depset([out]))]

swagger_ui = rule(
    implementation = _swagger_ui_impl,
    doc = "The named files of swagger-ui-dist and this repository's own `srcs` (which win: " +
          "they come last), flat in one directory.",
    attrs = {
        "dist": attr.label(allow_files = True, mandatory = True),
        "dist_files": attr.string_list(mandatory = True),
        "srcs": attr.label_list(allow_files = True),
    },
)
