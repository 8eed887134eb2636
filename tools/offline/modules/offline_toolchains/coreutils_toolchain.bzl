"""A coreutils toolchain backed by the host's coreutils (see coreutils.sh)."""

def _local_coreutils_impl(ctx):
    return [platform_common.ToolchainInfo(coreutils_info = struct(bin = ctx.file.bin))]

local_coreutils = rule(
    implementation = _local_coreutils_impl,
    attrs = {"bin": attr.label(allow_single_file = True, mandatory = True)},
)
