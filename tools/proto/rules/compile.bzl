"""A proto compile rule on rules_proto_grpc's core API, for a fixed set of plugins."""

load("@rules_proto_grpc//:defs.bzl", "ProtoPluginInfo", "proto_compile_attrs", "proto_compile_impl", "proto_compile_toolchains")

def _unused_tool_impl(ctx):
    script = ctx.actions.declare_file(ctx.label.name)

    # rules_proto_grpc's fixer and merger are Rust programs for languages whose plugins write
    # one output per package; building them would pull a Rust toolchain into every build. If
    # a plugin ever calls one, say so instead of guessing.
    ctx.actions.write(
        output = script,
        content = "#!/bin/sh\necho \"rules_proto_grpc called its fixer/merger ($*), which these plugins never need\" >&2\nexit 1\n",
        is_executable = True,
    )
    return [DefaultInfo(executable = script, files = depset([script]))]

unused_tool = rule(
    implementation = _unused_tool_impl,
    executable = True,
    doc = "An executable that fails, naming its arguments: rules_proto_grpc's fixer and merger, unused.",
)

def proto_compile_rule(plugins, plugins_cfg = "target"):
    """A rule running `plugins` (proto_plugin labels) over its `protos`.

    Assign the result to a global of a .bzl file, as with rule().

    Args:
      plugins: the proto_plugin targets to run.
      plugins_cfg: the configuration the plugins are taken in ("exec" for plugins built
        from source in the same build, e.g. C++ code generators).
    """
    return rule(
        implementation = proto_compile_impl,
        attrs = dict(
            proto_compile_attrs,
            _plugins = attr.label_list(
                providers = [ProtoPluginInfo],
                default = plugins,
                cfg = plugins_cfg,
            ),
            # Both default to Rust tools that rules_proto_grpc uses for some languages; none
            # of our plugins needs them, so a stand-in keeps the Rust toolchain out of the build.
            _fixer = attr.label(default = Label("//:unused_tool"), cfg = "exec", executable = True),
            _merger = attr.label(default = Label("//:unused_tool"), cfg = "exec", executable = True),
        ),
        toolchains = proto_compile_toolchains,
    )
