"""The repository's .proto files as a repository of another root module (`@micro_protos`).

The C++ client's and the gateway's modules cannot depend on the services' module (the root
MODULE.bazel): it includes `tools/common.MODULE.bazel`, and Bazel 7 refuses include() outside
the root module. Nor can they use protos/'s own BUILD files, which load the services' Python
rules. So this rule links the .proto files, and only them, into a repository of their own with
one proto_library per file, under the same package and name as in the root
(`protos/user/v1/user.proto` becomes `@micro_protos//user/v1:user_proto`) and the same import
paths (`user/v1/user.proto`). Its `//:protos.bzl` lists them (`PROTO_FILES`,
`PROTO_LIBRARIES`), so a module that serves every package needs no list of its own.
"""

# Imports resolve among these files, protobuf's well-known types and google/api's HTTP
# mapping (googleapis); anything else is refused by name, because a proto_library without its
# dependency fails later and less clearly.
_WKT_PREFIX = "google/protobuf/"
_GOOGLE_API_PREFIX = "google/api/"

def _proto_files(root):
    found = []
    pending = [root]

    # Starlark has no while loop: a bound far above any proto tree's count of directories.
    for _ in range(10000):
        if not pending:
            return found
        current = pending.pop()
        for entry in current.readdir():
            if entry.is_dir:
                pending.append(entry)
            elif entry.basename.endswith(".proto"):
                found.append(entry)
    fail("proto_tree: more than 10000 directories under %s" % root)

def _imports(content):
    # `import "a/b.proto";`, also `import public` and `import weak`: the quoted path.
    imports = []
    for line in content.splitlines():
        line = line.strip()
        if line.startswith("import ") and line.count("\"") == 2:
            imports.append(line.split("\"")[1])
    return imports

def _label(path, ours):
    if path in ours:
        package, _, file = path.rpartition("/")
        return "//%s:%s_proto" % (package, file.removesuffix(".proto"))
    if path.startswith(_WKT_PREFIX):
        return "@protobuf//:%s_proto" % path.removeprefix(_WKT_PREFIX).removesuffix(".proto")
    if path.startswith(_GOOGLE_API_PREFIX):
        return "@googleapis//google/api:%s_proto" % path.removeprefix(_GOOGLE_API_PREFIX).removesuffix(".proto")
    return None

def _proto_tree_impl(rctx):
    root = rctx.path(str(rctx.workspace_root) + "/" + rctx.attr.path)
    if not root.exists:
        fail("proto_tree: %s does not exist (path = %r, from %s)" % (root, rctx.attr.path, rctx.workspace_root))
    rctx.watch_tree(root)
    prefix = str(root) + "/"
    files = {str(f).removeprefix(prefix): f for f in _proto_files(root)}
    packages = {}
    for rel, file in files.items():
        rctx.symlink(file, rel)
        package, _, name = rel.rpartition("/")
        deps = []
        for imported in _imports(rctx.read(file)):
            label = _label(imported, files)
            if label == None:
                fail("proto_tree: %s imports %s, which is not under %s, a protobuf well-known type or google/api" % (rel, imported, rctx.attr.path))
            deps.append(label)
        packages.setdefault(package, []).append(
            'proto_library(\n    name = "%s_proto",\n    srcs = ["%s"],\n    deps = %s,\n)\n' %
            (name.removesuffix(".proto"), name, sorted(deps)),
        )
    for package, rules in packages.items():
        rctx.file(
            (package + "/" if package else "") + "BUILD.bazel",
            'load("@rules_proto//proto:defs.bzl", "proto_library")\n\n' +
            'package(default_visibility = ["//visibility:public"])\n\n' +
            "\n".join(sorted(rules)),
        )
    if "" not in packages:
        rctx.file("BUILD.bazel", "")
    names = sorted(files)
    rctx.file(
        "protos.bzl",
        '"""The .proto files of this repository, found by proto_tree."""\n\n' +
        "PROTO_FILES = %s\n\n" % repr(names) +
        "PROTO_LIBRARIES = [Label(l) for l in %s]\n" % repr([_label(name, files) for name in names]),
    )

proto_tree = repository_rule(
    implementation = _proto_tree_impl,
    attrs = {
        "path": attr.string(
            mandatory = True,
            doc = "The directory of .proto files, relative to this module's root.",
        ),
    },
    doc = "A repository of the .proto files under `path`, one proto_library each.",
)
