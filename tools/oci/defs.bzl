"""Container images of py_binary targets: runfiles layers and one-call service images.

The image keeps the binary's runfiles tree as Bazel lays it out (like aspect_rules_py's
py_image_layer), under `/app/<binary>/`: the launcher at `/app/<b>/<b>` and its tree at
`/app/<b>/<b>.runfiles/<repo>/<path>`. The tree is split by repository so that a change to
this workspace's code only changes the last layer:

  base      the interpreter (the `base` image)
  external  every external repo: third-party wheels (rules_python~~pip~*), bazel_tools
  app       this workspace's repo (`_main`), the launcher and the repo mapping
"""

load("@rules_oci//oci:defs.bzl", "oci_image", "oci_load")

def _rpath(workspace_name, short_path):
    """Path under `<binary>.runfiles/` of a runfile with this short_path."""
    if short_path.startswith("../"):
        return short_path[3:]
    return workspace_name + "/" + short_path

def _is_app(workspace_name, rpath):
    return "/" not in rpath or rpath.startswith(workspace_name + "/")

def _py_runfiles_layer_impl(ctx):
    binary = ctx.attr.binary[DefaultInfo]
    files_to_run = binary.files_to_run
    name = ctx.attr.binary.label.name
    root = "%s/%s/" % (ctx.attr.root.strip("/"), name)
    runfiles_root = root + name + ".runfiles/"
    ws = ctx.workspace_name
    want_app = ctx.attr.part == "app"

    # Tab-separated: destination, kind (file|empty), source path.
    entries = []
    inputs = []
    for f in binary.default_runfiles.files.to_list():
        rpath = _rpath(ws, f.short_path)
        if _is_app(ws, rpath) == want_app:
            entries.append("%s\tfile\t%s" % (runfiles_root + rpath, f.path))
            inputs.append(f)
    for path in binary.default_runfiles.empty_filenames.to_list():
        rpath = _rpath(ws, path)
        if _is_app(ws, rpath) == want_app:
            entries.append("%s\tempty\t" % (runfiles_root + rpath))
    for link in binary.default_runfiles.symlinks.to_list():
        rpath = ws + "/" + link.path
        if _is_app(ws, rpath) == want_app:
            entries.append("%s\tfile\t%s" % (runfiles_root + rpath, link.target_file.path))
            inputs.append(link.target_file)
    for link in binary.default_runfiles.root_symlinks.to_list():
        if _is_app(ws, link.path) == want_app:
            entries.append("%s\tfile\t%s" % (runfiles_root + link.path, link.target_file.path))
            inputs.append(link.target_file)
    if want_app:
        entries.append("%s\tfile\t%s" % (root + name, files_to_run.executable.path))
        inputs.append(files_to_run.executable)
        if files_to_run.repo_mapping_manifest:
            entries.append("%s\tfile\t%s" % (runfiles_root + "_repo_mapping", files_to_run.repo_mapping_manifest.path))
            inputs.append(files_to_run.repo_mapping_manifest)

    manifest = ctx.actions.declare_file(ctx.label.name + ".manifest")
    ctx.actions.write(manifest, "\n".join(sorted(entries)) + "\n")
    out = ctx.actions.declare_file(ctx.label.name + ".tar")
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [manifest.path, out.path],
        inputs = inputs + [manifest],
        outputs = [out],
        mnemonic = "PyImageLayer",
        progress_message = "Writing %s layer of %s" % (ctx.attr.part, ctx.attr.binary.label),
    )
    return [DefaultInfo(files = depset([out]))]

py_runfiles_layer = rule(
    implementation = _py_runfiles_layer_impl,
    doc = "One layer (a tar) of a py_binary's runfiles tree: its `app` or `external` part.",
    attrs = {
        "binary": attr.label(mandatory = True, executable = True, cfg = "target"),
        "part": attr.string(mandatory = True, values = ["app", "external"]),
        "root": attr.string(default = "/app"),
        "_tool": attr.label(default = "//tools/oci:runfiles_layer", executable = True, cfg = "exec"),
    },
)

def py_image_layers(name, binary, root = "/app", **kwargs):
    """The layers of `binary` for oci_image's `tars`, least often changed first.

    Args:
      name: prefix of the layer targets (`<name>_external`, `<name>_app`).
      binary: a py_binary.
      root: directory that holds `<binary name>/` in the image.
      **kwargs: common attributes (tags, visibility, testonly).

    Returns:
      the layer labels, in order.
    """
    parts = ["external", "app"]
    for part in parts:
        py_runfiles_layer(name = "%s_%s" % (name, part), binary = binary, part = part, root = root, **kwargs)
    return [":%s_%s" % (name, part) for part in parts]

def py_service_image(name, binary, port, base = "@python_base", env = {}, labels = {}, **kwargs):
    """`<name>` (oci_image), `<name>_load` (oci_load, tag `<binary>:dev`), `<name>_tarball`.

    The container runs the py_binary as uid/gid 65532 with a read-only root in mind:
    no byte code is written, and only /tmp needs to be writable.

    Args:
      name: usually "image".
      binary: the service's py_binary (in the same package).
      port: the gRPC port the service listens on.
      base: an image carrying the Python the binary was built for.
      env: extra environment.
      labels: extra image labels.
      **kwargs: common attributes.
    """
    svc = binary.split(":")[-1] if ":" in binary else binary.split("/")[-1]

    # Images are deliverables: deploy tooling and the image tests elsewhere consume them.
    kwargs.setdefault("visibility", ["//visibility:public"])
    tars = py_image_layers(name = name + "_layer", binary = binary, **kwargs)
    oci_image(
        name = name,
        base = base,
        tars = tars,
        entrypoint = ["/app/%s/%s" % (svc, svc)],
        workdir = "/app/%s" % svc,
        user = "65532:65532",
        env = dict({
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "GRPC_PORT": str(port),
        }, **env),
        exposed_ports = ["%d/tcp" % port],
        labels = dict({"org.opencontainers.image.title": svc}, **labels),
        **kwargs
    )
    oci_load(
        name = name + "_load",
        image = ":" + name,
        repo_tags = ["%s:dev" % svc],
        **kwargs
    )

    # tools/k3d.sh imports bazel-bin/<pkg>/<name>_load/tarball.tar, built through this.
    native.filegroup(
        name = name + "_tarball",
        srcs = [":" + name + "_load"],
        output_group = "tarball",
        **kwargs
    )
