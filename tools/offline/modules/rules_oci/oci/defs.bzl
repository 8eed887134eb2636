"""Offline stand-in for `@rules_oci//oci:defs.bzl`: oci_image, oci_image_index, oci_load.

Same call signatures as rules_oci's macros for what this workspace uses; values that
rules_oci also accepts as files (env, labels, entrypoint, ...) must be given inline here.
"""

load("//oci/private:image.bzl", "oci_image_index_rule", "oci_image_rule")
load("//oci/private:load.bzl", "oci_load_rule")

def _inline(name, attr, value, kind):
    if value == None or type(value) == kind:
        return value
    fail("%s: the offline rules_oci stand-in takes %s as a %s, not %r" % (name, attr, kind, value))

def oci_image(
        name,
        labels = None,
        annotations = None,
        env = None,
        cmd = None,
        entrypoint = None,
        exposed_ports = None,
        volumes = None,
        **kwargs):
    """An OCI image layout directory: `base` plus one layer per entry of `tars`.

    Args:
      name: target name; the output is the directory `<name>/`.
      labels: config labels.
      annotations: manifest annotations.
      env: environment, merged over the base image's.
      cmd: default arguments.
      entrypoint: the command.
      exposed_ports: e.g. ["50051/tcp"].
      volumes: volume mount points.
      **kwargs: base, tars, workdir, user, os, architecture, variant and common attributes.
    """
    oci_image_rule(
        name = name,
        labels = _inline(name, "labels", labels, type({})),
        annotations = _inline(name, "annotations", annotations, type({})),
        env = _inline(name, "env", env, type({})),
        cmd = _inline(name, "cmd", cmd, type([])),
        entrypoint = _inline(name, "entrypoint", entrypoint, type([])),
        exposed_ports = _inline(name, "exposed_ports", exposed_ports, type([])),
        volumes = _inline(name, "volumes", volumes, type([])),
        **kwargs
    )

def oci_image_index(name, images, platforms = None, **kwargs):
    """An OCI layout whose index lists `images`, each with the platform of its config.

    Args:
      name: target name; the output is the directory `<name>/`.
      images: oci_image targets, one per platform.
      platforms: rules_oci's transition of `images`; not supported by the stand-in.
      **kwargs: common attributes.
    """
    if platforms:
        fail("%s: the offline rules_oci stand-in takes images already built per platform" % name)
    oci_image_index_rule(name = name, images = images, **kwargs)

def oci_load(name, repo_tags = None, **kwargs):
    """`bazel run` loads the image into docker or podman; output group `tarball` is the file.

    Args:
      name: target name.
      repo_tags: e.g. ["usersvc:dev"].
      **kwargs: image, format and common attributes.
    """
    oci_load_rule(
        name = name,
        repo_tags = _inline(name, "repo_tags", repo_tags, type([])),
        **kwargs
    )
