"""Container images of py_binary targets: runfiles layers and one-call service images.

The image keeps the binary's runfiles tree as Bazel lays it out (like aspect_rules_py's
py_image_layer), under `/app/<binary>/`: the launcher at `/app/<b>/<b>` and its tree at
`/app/<b>/<b>.runfiles/<repo>/<path>`. Layers, least often changed first:

  base      the interpreter (the `base` image)
  external  one layer per external repo (each third-party wheel, bazel_tools), at
            `/app/external/<repo>/`, a path no binary's name is in: the same wheel is
            the same layer, with one digest, in every service's image, so a registry
            stores it and a node pulls it once. The runfiles tree links to it.
  app       this workspace's repo (`_main`), the launcher, the repo mapping and the links
            `<b>.runfiles/<repo> -> ../../external/<repo>`

Every .py file carries its byte code (runfiles_layer.py), so a read-only container
compiles nothing at start.
"""

load("@aspect_bazel_lib//lib:transitions.bzl", "platform_transition_filegroup")
load("@rules_oci//oci:defs.bzl", "oci_image", "oci_image_index", "oci_load")

# The image Python's byte-code tag (sys.implementation.cache_tag): the base's Python and
# requirements_lock.txt are 3.14; the layer tool refuses to write byte code for another.
PYTHON_CACHE_TAG = "cpython-314"

def _rpath(workspace_name, short_path):
    """Path under `<binary>.runfiles/` of a runfile with this short_path."""
    if short_path.startswith("../"):
        return short_path[3:]
    return workspace_name + "/" + short_path

def _repo(workspace_name, rpath):
    """The external repo a runfiles path is in, or None for this workspace's own."""
    if "/" not in rpath or rpath.startswith(workspace_name + "/"):
        return None
    return rpath.split("/")[0]

def _layer(ctx, name, entries, inputs, what):
    manifest = ctx.actions.declare_file(name + ".manifest")
    ctx.actions.write(manifest, "\n".join(sorted(entries)) + "\n")
    out = ctx.actions.declare_file(name + ".tar")
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = ["--cache-tag", PYTHON_CACHE_TAG, manifest.path, out.path],
        inputs = inputs + [manifest],
        outputs = [out],
        mnemonic = "PyImageLayer",
        progress_message = "Writing %s layer of %s" % (what, ctx.attr.binary.label),
    )
    return out

def _py_runfiles_layer_impl(ctx):
    binary = ctx.attr.binary[DefaultInfo]
    files_to_run = binary.files_to_run
    name = ctx.attr.binary.label.name
    root = "%s/%s/" % (ctx.attr.root.strip("/"), name)
    runfiles_root = root + name + ".runfiles/"
    shared_root = ctx.attr.root.strip("/") + "/external/"
    ws = ctx.workspace_name

    # Tab-separated manifest lines (runfiles_layer.py) and inputs: "" is the app layer.
    entries = {"": []}
    inputs = {"": []}

    def add(rpath, kind, file):
        repo = _repo(ws, rpath) or ""
        dest = (shared_root if repo else runfiles_root) + rpath
        entries.setdefault(repo, []).append("%s\t%s\t%s" % (dest, kind, file.path if file else ""))
        if file:
            inputs.setdefault(repo, []).append(file)

    runfiles = binary.default_runfiles
    for f in runfiles.files.to_list():
        add(_rpath(ws, f.short_path), "file", f)
    for path in runfiles.empty_filenames.to_list():
        add(_rpath(ws, path), "empty", None)
    for link in runfiles.symlinks.to_list():
        add(ws + "/" + link.path, "file", link.target_file)
    for link in runfiles.root_symlinks.to_list():
        add(link.path, "file", link.target_file)

    repos = sorted([repo for repo in entries if repo])
    if ctx.attr.part == "external":
        layers = [
            _layer(ctx, "%s/%s" % (ctx.label.name, repo), entries[repo], inputs[repo], repo)
            for repo in repos
        ]
        return [DefaultInfo(files = depset(layers))]

    app, app_inputs = entries[""], inputs[""]
    for repo in repos:
        app.append("%s\tlink\t../../external/%s" % (runfiles_root + repo, repo))
    app.append("%s\tfile\t%s" % (root + name, files_to_run.executable.path))
    app_inputs.append(files_to_run.executable)
    if files_to_run.repo_mapping_manifest:
        app.append("%s\tfile\t%s" % (runfiles_root + "_repo_mapping", files_to_run.repo_mapping_manifest.path))
        app_inputs.append(files_to_run.repo_mapping_manifest)
    return [DefaultInfo(files = depset([_layer(ctx, ctx.label.name, app, app_inputs, "app")]))]

py_runfiles_layer = rule(
    implementation = _py_runfiles_layer_impl,
    doc = "A py_binary's runfiles as image layers: its `app` layer, or one per external repo.",
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
      root: directory that holds `<binary name>/` and `external/` in the image.
      **kwargs: common attributes (tags, visibility, testonly).

    Returns:
      the layer labels, in order.
    """
    parts = ["external", "app"]
    for part in parts:
        py_runfiles_layer(name = "%s_%s" % (name, part), binary = binary, part = part, root = root, **kwargs)
    return [":%s_%s" % (name, part) for part in parts]

# The platforms every service image is built for, by OCI architecture: each variant is
# built through a platform transition (aspect_bazel_lib), so its wheels and interpreter
# are Linux ones of that CPU whatever the host is (macOS included).
IMAGE_PLATFORMS = {
    "amd64": Label("//tools/platforms:linux_amd64"),
    "arm64": Label("//tools/platforms:linux_arm64"),
}

def py_service_image(name, binary, port, base = "@python_base", env = {}, labels = {}, **kwargs):
    """An image index of a py_binary for every platform, one loader per variant.

    Targets (for name = "image"):
      image_amd64, image_arm64   the image of one platform (an OCI layout)
      image                      the index of both (what a registry gets)
      image_load                 `bazel run` loads the variant of the host's CPU as
                                 `<binary>:dev` into docker or podman (an engine runs its
                                 own CPU's images natively: Docker Desktop on Apple
                                 silicon runs arm64)
      image_load_amd64/_arm64    the same for a named variant
      image_tarball(_amd64/_arm64)  the `docker load` tarballs those write, for
                                 tools/k3d/k3d.sh and the image tests
      image_unplatformed         the image in the configuration of the build, which on
                                 macOS would mix macOS wheels into a Linux image: manual,
                                 built only through the variants above

    The container runs the py_binary as uid/gid 65532 with a read-only root in mind:
    no byte code is written, and only /tmp needs to be writable.

    Args:
      name: usually "image".
      binary: the service's py_binary (in the same package).
      port: the gRPC port the service listens on.
      base: an image carrying the Python the binary was built for, per platform.
      env: extra environment.
      labels: extra image labels.
      **kwargs: common attributes.
    """
    svc = binary.split(":")[-1] if ":" in binary else binary.split("/")[-1]

    # Images are deliverables: deploy tooling and the image tests elsewhere consume them.
    kwargs.setdefault("visibility", ["//visibility:public"])
    unplatformed_kwargs = dict(kwargs, tags = kwargs.get("tags", []) + ["manual"])
    tars = py_image_layers(name = name + "_layer", binary = binary, **unplatformed_kwargs)
    oci_image(
        name = name + "_unplatformed",
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
        **unplatformed_kwargs
    )
    for arch, platform in IMAGE_PLATFORMS.items():
        platform_transition_filegroup(
            name = "%s_%s" % (name, arch),
            srcs = [":%s_unplatformed" % name],
            target_platform = platform,
            **kwargs
        )
        _load(name, "_" + arch, ":%s_%s" % (name, arch), svc, **kwargs)
    oci_image_index(
        name = name,
        images = [":%s_%s" % (name, arch) for arch in IMAGE_PLATFORMS],
        **kwargs
    )
    _load(name, "", select({
        Label("@platforms//cpu:aarch64"): ":%s_arm64" % name,
        "//conditions:default": ":%s_amd64" % name,
    }), svc, **kwargs)

def _load(name, suffix, image, svc, **kwargs):
    """`<name>_load<suffix>` (oci_load, tag `<svc>:dev`) and `<name>_tarball<suffix>`."""
    oci_load(
        name = name + "_load" + suffix,
        image = image,
        repo_tags = ["%s:dev" % svc],
        **kwargs
    )

    # tools/k3d/k3d.sh imports bazel-bin/<pkg>/<name>_load<suffix>/tarball.tar, built through this.
    native.filegroup(
        name = name + "_tarball" + suffix,
        srcs = [":%s_load%s" % (name, suffix)],
        output_group = "tarball",
        **kwargs
    )
