"""debian_go_repository: a Go module's packages as Debian installs them, under the labels
gazelle's go_deps gives them online (`@org_golang_google_grpc//:grpc`, `//codes`, ...).

The libraries carry no sources: go_binary (def.bzl) builds against /usr/share/gocode, where
they are. A label that names a package Debian does not have fails at loading, naming it.
"""

_GOCODE = "/usr/share/gocode/src/"

def _packages(root):
    found = []
    pending = [root]

    # Starlark has no while loop: a bound far above any module's count of directories.
    for _ in range(100000):
        if not pending:
            return found
        current = pending.pop()
        has_go = False
        for entry in current.readdir():
            if entry.is_dir:
                if entry.basename not in ("testdata", "internal_test"):
                    pending.append(entry)
            elif entry.basename.endswith(".go") and not entry.basename.endswith("_test.go"):
                has_go = True
        if has_go:
            found.append(current)
    fail("debian_go_repository: too many directories under %s" % root)

def _debian_go_repository_impl(rctx):
    root = rctx.path(_GOCODE + (rctx.attr.debian_path or rctx.attr.importpath))
    if not root.exists:
        fail("debian_go_repository: %s is missing (install %s)" % (root, rctx.attr.debian_package))
    prefix = str(root)
    for package in _packages(root):
        rel = str(package).removeprefix(prefix).removeprefix("/")
        importpath = rctx.attr.importpath + ("/" + rel if rel else "")
        rctx.file(
            (rel + "/" if rel else "") + "BUILD.bazel",
            'load("@rules_go//go:def.bzl", "go_library")\n\n' +
            'go_library(\n    name = "%s",\n    importpath = "%s",\n    visibility = ["//visibility:public"],\n)\n' %
            (importpath.rpartition("/")[2], importpath),
        )
    if not rctx.path("BUILD.bazel").exists:
        rctx.file("BUILD.bazel", "")

debian_go_repository = repository_rule(
    implementation = _debian_go_repository_impl,
    attrs = {
        "importpath": attr.string(mandatory = True),
        "debian_path": attr.string(doc = "where Debian installs it under /usr/share/gocode/src, if not at importpath"),
        "debian_package": attr.string(mandatory = True, doc = "the Debian package, for the error message"),
    },
)
