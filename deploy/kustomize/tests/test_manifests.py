"""Renders every kustomize overlay and checks what would reach the cluster.

Rendering uses the kustomize binary (env KUSTOMIZE, else PATH, else Homebrew's bin
directories: tools/containers/render.py) or `kubectl kustomize`; schema checks are offline,
against the Kubernetes OpenAPI schemas that the kubernetes-validate package bundles, in
strict mode (unknown fields are errors). The prod
overlay reads its secrets from uncommitted files; the rendered copy gets throwaway ones.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from libs import inventory
from tools.containers.render import RenderError, kustomize_command
from tools.pytest.workspace import workspace_root

# The cluster version the manifests must be valid for: k3d's k3s and the kubectl in use.
KUBERNETES_VERSION = "1.32"
OVERLAYS = ["dev", "prod"]
INVENTORY = inventory.load()
SERVICES = {s.name: {"port": s.port, "db": s.database} for s in INVENTORY.services}
DB_HOST = "postgres.micro.svc"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# The suffix kustomize's generators append: a hash of the content.
GENERATED_SUFFIX = re.compile(r"-[a-z0-9]{10}$")
# The uncommitted files overlays/prod reads, relative to it (secrets.example/README.md).
PROD_SECRETS_DIR = "secrets"
PROD_PASSWORD_SECRETS = ["postgres-superuser", *(f"{svc}-db" for svc in SERVICES)]
# Who signs internal calls with a service key, and whom each callee trusts: the ConfigMap
# of public keys it mounts at TRUSTED_SERVICE_KEYS and the callers in it (the inventory's
# `calls`). Each callee has its own list, so no service trusts itself.
SIGNING_SERVICES = [s.name for s in INVENTORY.callers()]
TRUSTED_KEYS = {
    s.name: (f"{s.name}-trusted-service-keys", set(INVENTORY.callers_of(s.name)))
    for s in INVENTORY.services
    if INVENTORY.callers_of(s.name)
}
# Where prod reads each calling service's public key, under PROD_SECRETS_DIR.
PROD_PUBLIC_KEYS = "service-public-keys"
TRUST_CONFIGMAPS = {configmap for configmap, _ in TRUSTED_KEYS.values()}


KUSTOMIZE_DIR = workspace_root("deploy/kustomize", __file__) / "deploy/kustomize"


def pem_private(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_public(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def prod_secret_files() -> dict[str, str]:
    """Fresh throwaway contents for every file overlays/prod needs, by path under it."""
    files = {
        f"{PROD_SECRETS_DIR}/{name}.env": f"password={secrets.token_hex(32)}\n"
        for name in PROD_PASSWORD_SECRETS
    }
    files[f"{PROD_SECRETS_DIR}/authsvc-signing-key.pem"] = pem_private(Ed25519PrivateKey.generate())
    keys = {svc: Ed25519PrivateKey.generate() for svc in SIGNING_SERVICES}
    for svc, key in keys.items():
        files[f"{PROD_SECRETS_DIR}/{svc}-service-key.pem"] = pem_private(key)
        files[f"{PROD_SECRETS_DIR}/{PROD_PUBLIC_KEYS}/{svc}.pem"] = pem_public(key)
    return files


def copy_tree(dest: Path, prod_files: dict[str, str]) -> Path:
    """A real copy of deploy/kustomize with `prod_files` as the prod overlay's secrets.

    A copy because kustomize refuses files whose symlink target lies outside the
    kustomization root, which is every file in a Bazel runfiles tree. Real prod secrets
    in a checkout are left behind, so the test never reads them and runs the same anywhere.
    """

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {"tests", "__pycache__"}
        if Path(directory) == KUSTOMIZE_DIR / "overlays" / "prod":
            skipped.add(PROD_SECRETS_DIR)
        return skipped & set(names)

    shutil.copytree(KUSTOMIZE_DIR, dest, ignore=ignore)
    for rel, text in prod_files.items():
        path = dest / "overlays" / "prod" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return dest


def kustomize_build(overlay_dir: Path) -> subprocess.CompletedProcess[str]:
    try:
        cmd = [*kustomize_command(), str(overlay_dir)]
    except RenderError as exc:
        pytest.fail(str(exc))
    env = {**os.environ, "HOME": os.environ.get("HOME") or str(overlay_dir)}
    # The argv is this file's own: a found tool's path or the KUSTOMIZE path the caller chose.
    return subprocess.run(  # noqa: S603
        cmd, check=False, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="session")
def prod_files() -> dict[str, str]:
    return prod_secret_files()


@pytest.fixture(scope="session")
def kustomize_tree(tmp_path_factory: pytest.TempPathFactory, prod_files: dict[str, str]) -> Path:
    return copy_tree(tmp_path_factory.mktemp("kustomize") / "kustomize", prod_files)


@pytest.fixture(scope="session")
def rendered(kustomize_tree: Path) -> dict[str, list[dict]]:
    out = {}
    for overlay in OVERLAYS:
        result = kustomize_build(kustomize_tree / "overlays" / overlay)
        assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{result.stderr}"
        out[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return out


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(docs: list[dict]) -> list[dict]:
    return of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")


def containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def env_map(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_values(docs: list[dict]) -> dict[tuple[str, str], str]:
    values = {}
    for secret in of_kind(docs, "Secret"):
        for key, value in (secret.get("data") or {}).items():
            values[(secret["metadata"]["name"], key)] = base64.b64decode(value).decode()
        for key, value in (secret.get("stringData") or {}).items():
            values[(secret["metadata"]["name"], key)] = value
    return values


def generated(docs: list[dict], kind: str, name: str) -> dict:
    """The object a generator named `name`, whatever content hash kustomize appended."""
    found = [
        d for d in of_kind(docs, kind) if GENERATED_SUFFIX.sub("", d["metadata"]["name"]) == name
    ]
    assert len(found) == 1, f"expected exactly one generated {kind}/{name}, found {len(found)}"
    return found[0]


def values_by_generator(docs: list[dict], kind: str) -> dict[tuple[str, str], str]:
    """(generator name, key) -> decoded value for every Secret or ConfigMap."""
    values = {}
    for doc in of_kind(docs, kind):
        name = GENERATED_SUFFIX.sub("", doc["metadata"]["name"])
        for key, value in (doc.get("data") or {}).items():
            values[(name, key)] = base64.b64decode(value).decode() if kind == "Secret" else value
        for key, value in (doc.get("stringData") or {}).items():
            values[(name, key)] = value
    return values


def secret_ref(docs: list[dict], ref: dict) -> tuple[str, str]:
    """Resolves a secretKeyRef to (secret name, key), asserting both exist in the render."""
    key = (ref["name"], ref["key"])
    assert key in secret_values(docs), f"secretKeyRef to missing Secret/key {key}"
    return key


def init_script(docs: list[dict]) -> str:
    sts = one(docs, "StatefulSet", "postgres")
    pod = sts["spec"]["template"]["spec"]
    mount = next(
        m
        for m in pod["containers"][0]["volumeMounts"]
        if m["mountPath"] == "/docker-entrypoint-initdb.d"
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    cm = one(docs, "ConfigMap", volume["configMap"]["name"])
    scripts = [v for k, v in cm["data"].items() if k.endswith((".sh", ".sql"))]
    assert scripts, "the initdb ConfigMap holds no script"
    return "\n".join(scripts)


def test_overlay_list_is_complete():
    on_disk = sorted(
        p.name
        for p in (KUSTOMIZE_DIR / "overlays").iterdir()
        if (p / "kustomization.yaml").is_file()
    )
    assert on_disk == sorted(OVERLAYS), "a new overlay must be added to OVERLAYS so it is checked"


def test_kubernetes_validate_bundles_the_target_version():
    # validate() silently falls back to an older schema set; make that fallback visible.
    assert KUBERNETES_VERSION in {
        ".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_is_schema_valid(rendered, overlay):
    errors = []
    for doc in rendered[overlay]:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_expected_objects_exist_in_namespace_micro(rendered, overlay):
    docs = rendered[overlay]
    namespace = one(docs, "Namespace", "micro")
    # Admission then rejects any pod that loses the hardening the tests below check.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "micro", (
                f"{doc['kind']}/{doc['metadata']['name']}"
            )
    for svc in SERVICES:
        one(docs, "Deployment", svc)
        one(docs, "Service", svc)
    one(docs, "StatefulSet", "postgres")
    one(docs, "Service", "postgres")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_labelled(rendered, overlay):
    for doc in rendered[overlay]:
        labels = doc["metadata"].get("labels", {})
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/part-of") == "micro", name
        if doc["kind"] in (
            "Deployment",
            "Service",
            "StatefulSet",
            "ServiceAccount",
            "PodDisruptionBudget",
        ):
            assert "app.kubernetes.io/name" in labels, name
    for workload in workloads(rendered[overlay]):
        template_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert template_labels["app.kubernetes.io/name"] == workload["metadata"]["name"]
        assert template_labels["app.kubernetes.io/part-of"] == "micro"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(rendered, overlay):
    for workload in workloads(rendered[overlay]):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in containers(workload):
            sc = c["securityContext"]
            where = f"{name}/{c['name']}"
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] != 0, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert sc.get("privileged", False) is False, where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where}: {kind}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_run_as_65532_with_writable_tmp_only(rendered, overlay):
    for svc in SERVICES:
        pod = one(rendered[overlay], "Deployment", svc)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 65532
        (c,) = pod["containers"]
        assert c["securityContext"]["runAsUser"] == 65532
        volumes = {v["name"]: v for v in pod["volumes"]}
        writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
        # A path inside the container, not a temporary file of this test.
        assert [m["mountPath"] for m in writable] == ["/tmp"], svc  # noqa: S108
        assert "emptyDir" in volumes[writable[0]["name"]], svc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_expose_grpc_and_metrics_with_grpc_probes(rendered, overlay):
    for svc, spec in SERVICES.items():
        (c,) = one(rendered[overlay], "Deployment", svc)["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"grpc": spec["port"], "metrics": 9090}, svc
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["grpc"]["port"] == spec["port"], f"{svc} {probe}"
        # Readiness follows the database (""), liveness must not, or a DB outage restarts
        # every pod; "liveness" is SERVING while the process runs.
        assert c["readinessProbe"]["grpc"].get("service", "") == "", svc
        assert c["livenessProbe"]["grpc"]["service"] == "liveness", svc
        assert c["startupProbe"]["grpc"]["service"] == "liveness", svc
        env = env_map(c)
        assert env["GRPC_PORT"]["value"] == str(spec["port"])
        assert env["METRICS_PORT"]["value"] == "9090"
        # The services bind /metrics to loopback unless told; the scraper is in another pod.
        assert env["METRICS_ADDRESS"]["value"] == "0.0.0.0"  # noqa: S104
        assert env["LOG_LEVEL"]["value"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cluster_services_route_to_their_pods(rendered, overlay):
    docs = rendered[overlay]
    for svc, spec in SERVICES.items():
        service = one(docs, "Service", svc)
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
        grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert grpc["port"] == spec["port"]
        assert grpc["targetPort"] in ("grpc", spec["port"])
        pod_labels = one(docs, "Deployment", svc)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_env_matches_the_system(rendered, overlay):
    docs = rendered[overlay]
    # A caller finds each service it calls (the inventory's `calls`) by its cluster name.
    for s in INVENTORY.services:
        env = env_map(one(docs, "Deployment", s.name)["spec"]["template"]["spec"]["containers"][0])
        for callee in map(INVENTORY.get, s.calls):
            address = f"{callee.name}.micro.svc:{callee.port}"
            assert env[f"{callee.env_prefix}_ADDR"]["value"] == address, s.name
    payments = env_map(
        one(docs, "Deployment", "paymentsvc")["spec"]["template"]["spec"]["containers"][0]
    )
    assert re.fullmatch(r"[A-Z]{3}", payments["DEFAULT_CURRENCY"]["value"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_signing_key_is_mounted_from_a_secret(rendered, overlay):
    docs = rendered[overlay]
    pod = one(docs, "Deployment", "authsvc")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    key_file = Path(env_map(c)["AUTH_SIGNING_KEY_FILE"]["value"])
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == str(key_file.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    key = secret_ref(docs, {"name": volume["secret"]["secretName"], "key": key_file.name})
    assert "-----BEGIN PRIVATE KEY-----" in secret_values(docs)[key]
    # Readable by the pod's fsGroup (the service), by nobody else.
    assert volume["secret"]["defaultMode"] & 0o007 == 0
    assert pod["securityContext"]["fsGroup"] == 65532


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_connects_to_its_own_database_with_the_password_postgres_got(
    rendered, overlay
):
    docs = rendered[overlay]
    pg_env = env_map(
        one(docs, "StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]
    )
    for svc, spec in SERVICES.items():
        env_list = one(docs, "Deployment", svc)["spec"]["template"]["spec"]["containers"][0]["env"]
        names = [e["name"] for e in env_list]
        url_entry = env_list[names.index("DATABASE_URL")]
        assert "valueFrom" not in url_entry
        url = urlsplit(url_entry["value"])
        assert url.scheme in ("postgres", "postgresql")
        assert (url.hostname, url.port, url.path) == (DB_HOST, 5432, "/" + str(spec["db"])), svc
        assert url.username == svc
        match = re.fullmatch(r"\$\((\w+)\)", url.password or "")
        assert match, f"{svc}: the password in DATABASE_URL must be a $(VAR) reference"
        var = match.group(1)
        # $(VAR) expands only variables defined earlier in the list.
        assert var in names[: names.index("DATABASE_URL")], (
            f"{svc}: {var} must precede DATABASE_URL"
        )
        service_key = secret_ref(docs, env_list[names.index(var)]["valueFrom"]["secretKeyRef"])
        postgres_key = secret_ref(
            docs, pg_env[f"{svc.upper()}_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]
        )
        assert service_key == postgres_key, f"{svc} and postgres must read the same Secret key"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_appears_in_any_configmap(rendered, overlay):
    docs = rendered[overlay]
    secrets = secret_values(docs)
    assert secrets
    for cm in of_kind(docs, "ConfigMap"):
        for key, text in (cm.get("data") or {}).items():
            for (secret, secret_key), value in secrets.items():
                # Check each line too, so a multi-line key leaks even if partly copied.
                needles = [value, *(line for line in value.splitlines() if len(line) >= 16)]
                for needle in needles:
                    assert needle not in text, (
                        f"ConfigMap {cm['metadata']['name']}/{key} holds Secret {secret}/{secret_key}"
                    )
    for doc in of_kind(docs, "Secret"):
        assert doc["type"] == "Opaque"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_statefulset_is_persistent_and_headless(rendered, overlay):
    docs = rendered[overlay]
    sts = one(docs, "StatefulSet", "postgres")
    service = one(docs, "Service", "postgres")
    assert service["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == "postgres"
    assert (
        service["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    )
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert c["image"].startswith("postgres:16-alpine") or c["image"].startswith("postgres@sha256:")
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    data_mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/var/lib/postgresql/data")
    assert data_mount["name"] in claims
    env = env_map(c)
    assert "valueFrom" in env["POSTGRES_PASSWORD"], "the superuser password must come from a Secret"
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_init_script_creates_one_owned_database_and_role_per_service(rendered, overlay):
    script = init_script(rendered[overlay])
    assert len(re.findall(r"CREATE DATABASE", script)) == len(SERVICES)
    assert len(re.findall(r"CREATE ROLE", script)) == len(SERVICES)
    assert "ON_ERROR_STOP=1" in script, "a failed statement must fail the init"
    for svc, spec in SERVICES.items():
        role = re.search(rf"CREATE ROLE {svc} (.*);", script)
        assert role, f"no role {svc}"
        options = role.group(1).split()
        assert "LOGIN" in options
        for privilege in ("SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS"):
            assert privilege not in options, f"{svc} must not have {privilege}"
        # The password is a psql variable bound from the Secret-fed env, never a literal.
        password = re.search(r"PASSWORD :'(\w+)'", role.group(1))
        assert password, f"{svc}: password must be a psql variable"
        assert re.search(rf'-v {password.group(1)}="\${svc.upper()}_DB_PASSWORD"', script)
        assert re.search(rf"CREATE DATABASE {spec['db']} OWNER {svc};", script), spec["db"]
        assert re.search(rf"REVOKE CONNECT\b[^;]* ON DATABASE {spec['db']} FROM PUBLIC;", script), (
            spec["db"]
        )
    assert re.search(r"REVOKE CONNECT\b[^;]* ON DATABASE postgres FROM PUBLIC;", script)
    assert not re.search(r"\bGRANT\b", script), "owners need no grant; any grant widens access"


def test_dev_runs_one_local_dev_image_per_service(rendered):
    docs = rendered["dev"]
    for svc in SERVICES:
        deployment = one(docs, "Deployment", svc)
        assert deployment["spec"]["replicas"] == 1
        (c,) = deployment["spec"]["template"]["spec"]["containers"]
        assert c["image"] == f"{svc}:dev"
        assert c["imagePullPolicy"] == "IfNotPresent"


def test_prod_runs_replicated_pinned_spread_services(rendered):
    docs = rendered["prod"]
    for svc in SERVICES:
        deployment = one(docs, "Deployment", svc)
        assert deployment["spec"]["replicas"] >= 2, svc
        pod = deployment["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert DIGEST.search(c["image"]), f"{svc} image {c['image']} is not pinned by digest"
        assert c["image"].split("/")[-1].startswith(f"{svc}@"), c["image"]
        terms = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert any(
            t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
            and t["podAffinityTerm"]["labelSelector"]["matchLabels"]
            == {"app.kubernetes.io/name": svc}
            for t in terms
        ), svc
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_prod_gives_services_more_resources_than_dev(rendered):
    def mem_mi(q: str) -> float:
        units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
        return float(q[:-2]) * units[q[-2:]]

    for svc in SERVICES:
        dev = one(rendered["dev"], "Deployment", svc)["spec"]["template"]["spec"]["containers"][0][
            "resources"
        ]
        prod = one(rendered["prod"], "Deployment", svc)["spec"]["template"]["spec"]["containers"][
            0
        ]["resources"]
        assert mem_mi(prod["requests"]["memory"]) > mem_mi(dev["requests"]["memory"]), svc
        assert mem_mi(prod["limits"]["memory"]) >= mem_mi(dev["limits"]["memory"]), svc


def test_prod_has_a_pdb_per_service_selecting_its_pods(rendered):
    docs = rendered["prod"]
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for svc in SERVICES:
        pod_labels = one(docs, "Deployment", svc)["spec"]["template"]["metadata"]["labels"]
        matching = [
            p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        ]
        assert len(matching) == 1, (
            f"{svc}: expected one PDB selecting its pods, found {len(matching)}"
        )
        assert matching[0]["spec"]["minAvailable"] == 1
        # A PDB that also selected another service's pods would couple their drains.
        for other in SERVICES.keys() - {svc}:
            other_labels = one(docs, "Deployment", other)["spec"]["template"]["metadata"]["labels"]
            assert (
                not matching[0]["spec"]["selector"]["matchLabels"].items() <= other_labels.items()
            )


def test_prod_pins_postgres_by_digest(rendered):
    (c,) = one(rendered["prod"], "StatefulSet", "postgres")["spec"]["template"]["spec"][
        "containers"
    ]
    assert DIGEST.search(c["image"]), c["image"]


def prod_kustomization() -> dict:
    return yaml.safe_load((KUSTOMIZE_DIR / "overlays/prod/kustomization.yaml").read_text())


def files_read_by_prod_generators() -> set[str]:
    kustomization = prod_kustomization()
    paths = set()
    for generator in kustomization.get("secretGenerator", []) + kustomization.get(
        "configMapGenerator", []
    ):
        paths.update(generator.get("envs", []))
        paths.update(f.split("=", 1)[-1] for f in generator.get("files", []))
    return paths


def test_prod_reads_only_uncommitted_files_that_the_example_documents(prod_files):
    read = files_read_by_prod_generators()
    # Every file prod reads is one this test writes; a new one must be added to both.
    assert read == set(prod_files)
    assert all(p.startswith(f"{PROD_SECRETS_DIR}/") for p in read), read
    ignored = (KUSTOMIZE_DIR / "overlays/prod/.gitignore").read_text().splitlines()
    assert f"/{PROD_SECRETS_DIR}/" in ignored, "overlays/prod/secrets must stay out of git"
    howto = (KUSTOMIZE_DIR / "overlays/prod/secrets.example/README.md").read_text()
    for path in read:
        assert f"`{path}`" in howto, f"secrets.example/README.md does not say how to make {path}"


def test_prod_replaces_every_dev_secret_and_service_key(rendered):
    dev, prod = rendered["dev"], rendered["prod"]
    for kind in ("Secret", "ConfigMap"):
        assert values_by_generator(prod, kind).keys() == values_by_generator(dev, kind).keys()
    dev_values = list(values_by_generator(dev, "Secret").values())
    dev_values += [
        value
        for (name, _), value in values_by_generator(dev, "ConfigMap").items()
        if name in TRUST_CONFIGMAPS
    ]
    prod_values = list(values_by_generator(prod, "Secret").values())
    prod_values += [
        value
        for (name, _), value in values_by_generator(prod, "ConfigMap").items()
        if name in TRUST_CONFIGMAPS
    ]
    # The whole render, with every Secret decoded, so a value copied anywhere is found.
    prod_text = "\n".join([*(yaml.safe_dump(d) for d in prod), *prod_values])
    for value in dev_values:
        assert value not in prod_values
        # Each line of key material too (not the PEM armour every key shares), so a partly
        # copied key is caught as well.
        lines = [ln for ln in value.splitlines() if len(ln) >= 16 and not ln.startswith("-----")]
        for needle in [value, *lines]:
            assert needle not in prod_text, f"a dev value reached prod: {needle[:24]}..."


def test_prod_secrets_hold_exactly_the_files_contents(rendered, prod_files):
    docs = rendered["prod"]
    secrets_ = values_by_generator(docs, "Secret")
    for name in PROD_PASSWORD_SECRETS:
        password = prod_files[f"{PROD_SECRETS_DIR}/{name}.env"].strip().removeprefix("password=")
        # No newline or quote from the file may end up in the password (and DATABASE_URL).
        assert secrets_[(name, "password")] == password, name
    assert (
        secrets_[("authsvc-signing-key", "signing_key.pem")]
        == prod_files[f"{PROD_SECRETS_DIR}/authsvc-signing-key.pem"]
    )
    trusted = values_by_generator(docs, "ConfigMap")
    for svc in SIGNING_SERVICES:
        assert (
            secrets_[(f"{svc}-service-key", "service_key.pem")]
            == prod_files[f"{PROD_SECRETS_DIR}/{svc}-service-key.pem"]
        )
    for configmap, callers in TRUSTED_KEYS.values():
        for svc in callers:
            assert (
                trusted[(configmap, f"{svc}.pem")]
                == prod_files[f"{PROD_SECRETS_DIR}/{PROD_PUBLIC_KEYS}/{svc}.pem"]
            ), (configmap, svc)


def mounted(pod: dict, container: dict, path: str) -> tuple[dict, dict]:
    """The read-only mount at `path` (a directory) and the pod volume behind it."""
    mount = next((m for m in container["volumeMounts"] if m["mountPath"] == path), None)
    assert mount, f"nothing is mounted at {path}"
    assert mount["readOnly"] is True, path
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return mount, volume


def service_key(docs: list[dict], svc: str) -> Ed25519PrivateKey:
    """The private key `svc` signs with: its SERVICE_KEY_FILE, followed to the Secret."""
    pod = one(docs, "Deployment", svc)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    key_file = Path(env_map(c)["SERVICE_KEY_FILE"]["value"])
    _, volume = mounted(pod, c, str(key_file.parent))
    assert "secret" in volume, f"{svc}: SERVICE_KEY_FILE must come from a Secret"
    # Its own Secret: a service key shared by two services would make them one identity.
    assert GENERATED_SUFFIX.sub("", volume["secret"]["secretName"]) == f"{svc}-service-key"
    # Readable by the pod's fsGroup (the service), by nobody else.
    assert volume["secret"]["defaultMode"] & 0o007 == 0, svc
    assert pod["securityContext"]["fsGroup"] == 65532
    ref = secret_ref(docs, {"name": volume["secret"]["secretName"], "key": key_file.name})
    private = serialization.load_pem_private_key(secret_values(docs)[ref].encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey), svc
    return private


def trusted_keys(docs: list[dict], svc: str) -> tuple[str, dict[str, str]]:
    """The ConfigMap `svc` mounts at TRUSTED_SERVICE_KEYS (generator name) and its files."""
    pod = one(docs, "Deployment", svc)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    path = env_map(c)["TRUSTED_SERVICE_KEYS"]["value"]
    _, volume = mounted(pod, c, path)
    assert "configMap" in volume, f"{svc}: TRUSTED_SERVICE_KEYS must come from a ConfigMap"
    # Every key, so an `items:` list cannot hide or rename a file.
    assert "items" not in volume["configMap"], svc
    cm = one(docs, "ConfigMap", volume["configMap"]["name"])
    return GENERATED_SUFFIX.sub("", cm["metadata"]["name"]), cm.get("data") or {}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("svc", SIGNING_SERVICES)
def test_each_caller_signs_with_its_own_mounted_service_key(rendered, overlay, svc):
    service_key(rendered[overlay], svc)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_callee_trusts_exactly_its_callers_keys(rendered, overlay):
    docs = rendered[overlay]
    for callee, (configmap, callers) in TRUSTED_KEYS.items():
        name, files = trusted_keys(docs, callee)
        assert name == configmap, callee
        # The service name a callee accepts is the file name (libs/platform/auth/keys.py).
        assert set(files) == {f"{svc}.pem" for svc in callers}, callee
        assert f"{callee}.pem" not in files, f"{callee} must not trust itself"
        for svc in callers:
            assert files[f"{svc}.pem"] == pem_public(service_key(docs, svc)), (callee, svc)
    # The services that verify nothing from other services mount no trusted keys.
    for svc in SERVICES.keys() - TRUSTED_KEYS.keys():
        c = one(docs, "Deployment", svc)["spec"]["template"]["spec"]["containers"][0]
        assert "TRUSTED_SERVICE_KEYS" not in env_map(c), svc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_authsvc_trusts_only_usersvc_and_usersvc_not_itself(rendered, overlay):
    """RevokeUserSessions is usersvc's alone; usersvc's list is authsvc's and paymentsvc's."""
    docs = rendered[overlay]
    assert set(trusted_keys(docs, "authsvc")[1]) == {"usersvc.pem"}
    usersvc_trusts = trusted_keys(docs, "usersvc")[1]
    assert "usersvc.pem" not in usersvc_trusts
    # Not under another name either: no file in usersvc's list is usersvc's public key.
    assert pem_public(service_key(docs, "usersvc")) not in usersvc_trusts.values()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_authsvc_signing_key_is_ed25519(rendered, overlay):
    secrets_ = values_by_generator(rendered[overlay], "Secret")
    signing = serialization.load_pem_private_key(
        secrets_[("authsvc-signing-key", "signing_key.pem")].encode(), password=None
    )
    assert isinstance(signing, Ed25519PrivateKey)


@pytest.mark.parametrize("missing", sorted(prod_secret_files()))
def test_prod_does_not_render_without_each_secret_file(tmp_path, prod_files, missing):
    tree = copy_tree(tmp_path / "kustomize", {k: v for k, v in prod_files.items() if k != missing})
    result = kustomize_build(tree / "overlays" / "prod")
    assert result.returncode != 0, f"prod rendered without {missing}"
    assert missing in result.stderr, result.stderr
    assert kustomize_build(tree / "overlays" / "dev").returncode == 0, "dev needs no prod file"


def test_prod_does_not_render_without_any_secret_file(tmp_path):
    tree = copy_tree(tmp_path / "kustomize", {})
    result = kustomize_build(tree / "overlays" / "prod")
    assert result.returncode != 0
    assert f"overlays/prod/{PROD_SECRETS_DIR}/" in result.stderr, result.stderr
