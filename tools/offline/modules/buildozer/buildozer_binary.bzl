"""Stand-in for the buildozer module's extension that @bazel_tools requires.

Bazel's own MODULE.bazel asks for a repo named `buildozer_binary`; nothing in this
workspace runs buildozer, so an empty repo satisfies the graph without a download.
"""

def _empty_repo_impl(rctx):
    rctx.file("BUILD.bazel", "")

_empty_repo = repository_rule(implementation = _empty_repo_impl)

def _buildozer_binary_impl(_mctx):
    _empty_repo(name = "buildozer_binary")

buildozer_binary = module_extension(implementation = _buildozer_binary_impl)
