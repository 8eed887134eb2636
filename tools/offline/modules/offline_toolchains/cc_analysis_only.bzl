"""A C++ toolchain config that lets a target platform be analysed but compiles nothing.

Bazel 7's built-in py_binary asks for a C++ toolchain of its target platform even when
nothing is compiled. The images' linux/arm64 variant holds only Python sources and
PyPI's prebuilt aarch64 wheels, so offline it needs a toolchain to resolve, not a cross
compiler; every tool is /bin/false, so a C++ action built for arm64 fails loudly.
"""

load("@bazel_tools//tools/cpp:cc_toolchain_config_lib.bzl", "tool_path")

def _impl(ctx):
    return cc_common.create_cc_toolchain_config_info(
        ctx = ctx,
        toolchain_identifier = "analysis-only-" + ctx.attr.cpu,
        host_system_name = "local",
        target_system_name = ctx.attr.cpu + "-linux-gnu",
        target_cpu = ctx.attr.cpu,
        target_libc = "glibc",
        compiler = "none",
        abi_version = "none",
        abi_libc_version = "none",
        tool_paths = [
            tool_path(name = tool, path = "/bin/false")
            for tool in ["ar", "cpp", "gcc", "gcov", "ld", "nm", "objdump", "strip"]
        ],
    )

cc_analysis_only_config = rule(
    implementation = _impl,
    attrs = {"cpu": attr.string(mandatory = True)},
    provides = [CcToolchainConfigInfo],
)
