"""go_library and go_binary with upstream's names and the attributes the repository uses.

A go_library only records its sources under its import path. go_binary lays out every
library of its closure in a GOPATH of its own and runs Debian's `go build` in GOPATH mode
against /usr/share/gocode, where Debian's golang-*-dev packages put the third-party sources:
what online comes from go_deps repositories is there, so a library from such a repository
(debian_go_repository) carries no sources and needs none.
"""

GoSourcesInfo = provider(
    doc = "Go sources by import path, this library's and its dependencies'.",
    fields = {
        "importpath": "this library's import path",
        "trees": "depset of struct(importpath, files)",
    },
)

def go_sources(importpath, files, deps):
    """The GoSourcesInfo of one package and the packages of its `deps`.

    Args:
      importpath: the package's import path.
      files: its Files (maybe none: a Debian package has its sources in GOPATH).
      deps: targets whose GoSourcesInfo the package's closure takes in.

    Returns:
      GoSourcesInfo.
    """
    own = [struct(importpath = importpath, files = depset(files))] if files else []
    trees = [d[GoSourcesInfo].trees for d in deps if GoSourcesInfo in d]
    return GoSourcesInfo(importpath = importpath, trees = depset(own, transitive = trees))

def _go_library_impl(ctx):
    return [
        go_sources(ctx.attr.importpath, ctx.files.srcs, ctx.attr.deps + ctx.attr.embed),
        DefaultInfo(files = depset(ctx.files.srcs)),
    ]

_LIBRARY_ATTRS = {
    "srcs": attr.label_list(allow_files = [".go"]),
    "deps": attr.label_list(),
    "embed": attr.label_list(),
    "importpath": attr.string(),
}

go_library = rule(implementation = _go_library_impl, attrs = _LIBRARY_ATTRS)

# Debian installs major-version modules without their /vN suffix (github.com/x/y for
# github.com/x/y/v2), and GOPATH mode looks for the suffix: these get a link with it.
_MAJOR_VERSION_LINKS = {
    "github.com/grpc-ecosystem/grpc-gateway/v2": "/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway",
}

def _go_binary_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name)
    if ctx.attr.embed:
        main = ctx.attr.embed[0][GoSourcesInfo].importpath
    else:
        main = "main.local/" + ctx.label.name
    trees = go_sources(main, ctx.files.srcs, ctx.attr.deps + ctx.attr.embed).trees.to_list()
    lines = ["set -eu", 'top="$PWD"', 'gopath="$(mktemp -d)"', 'trap \'rm -rf "$gopath"\' EXIT']
    inputs = []
    for tree in trees:
        lines.append('mkdir -p "$gopath/src/%s"' % tree.importpath)
        for f in tree.files.to_list():
            inputs.append(f)
            if f.is_directory:
                lines.append('cp -RL "$top/%s/." "$gopath/src/%s/"' % (f.path, tree.importpath))
            else:
                lines.append('cp -L "$top/%s" "$gopath/src/%s/"' % (f.path, tree.importpath))
    for link, target in _MAJOR_VERSION_LINKS.items():
        lines.append('mkdir -p "$gopath/src/%s" && rmdir "$gopath/src/%s" && ln -s %s "$gopath/src/%s"' % (link, link, target, link))
    lines += [
        'cd "$gopath/src/%s"' % main,
        # The build cache only makes rebuilds faster; the program depends on the sources alone.
        'GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS=-trimpath GOCACHE="${TMPDIR:-/tmp}/micro-go-build-cache" HOME="$gopath" \\',
        '  /usr/bin/go build -o "$top/%s" .' % out.path,
    ]
    script = ctx.actions.declare_file(ctx.label.name + ".build.sh")
    ctx.actions.write(script, "\n".join(lines) + "\n", is_executable = True)
    ctx.actions.run(
        executable = script,
        inputs = inputs,
        outputs = [out],
        mnemonic = "GoBuild",
        progress_message = "Building Go program %{label} (Debian's Go, GOPATH mode)",
        use_default_shell_env = True,
    )
    return [DefaultInfo(executable = out, files = depset([out]))]

go_binary = rule(
    implementation = _go_binary_impl,
    attrs = _LIBRARY_ATTRS,
    executable = True,
)
