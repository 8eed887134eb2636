"""services/inventory.bzl as JSON, for the Python that reads it (libs/inventory)."""

load("//services:inventory.bzl", "SERVICES")

def _inventory_json_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out)

    # A list, not an object: Starlark's json.encode sorts keys, and the order is a fact too.
    services = [dict(name = name, **facts) for name, facts in SERVICES.items()]
    ctx.actions.write(out, json.encode_indent(services, indent = "  ") + "\n")
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

inventory_json = rule(
    implementation = _inventory_json_impl,
    doc = "Writes SERVICES of //services:inventory.bzl to `out`: a JSON list, in its order.",
    attrs = {"out": attr.string(mandatory = True)},
)
