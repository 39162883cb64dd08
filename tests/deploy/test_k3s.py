"""deploy/k3s: the kustomization renders with the real `kubectl kustomize`, every standard
object passes `kubernetes-validate` in strict mode, and a policy holds on what renders:
requests, limits and probes on every long-running container, non-root, read-only root
filesystem, no capabilities, the multi-arch image tags docker-bake.hcl pushes, and the
wiring the compose stack has (runner pools, NATS with JetStream synced on every write).

The secret files are git-ignored (only `*.example` is committed), so the render runs on a
copy of deploy/k3s where each example stands in for its real file, exactly as an operator's
`cp x.env.example x.env` would."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K3S = REPO / "deploy" / "k3s"
BAKE = REPO / "deploy" / "docker-bake.hcl"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"

# k3s's stable channel follows upstream Kubernetes about one minor behind; 1.33 is the
# oldest line still patched. Both ends pass, so the manifests hold across current k3s.
KUBERNETES_VERSIONS = ("1.33.0", "1.36.0")
SERVICES = ("gateway", "planner", "agent-runner", "cost-ledger", "vector-sync")
DATASTORES = ("nats", "postgres", "qdrant")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tree = tmp_path_factory.mktemp("k3s") / "k3s"
    shutil.copytree(K3S, tree, ignore=shutil.ignore_patterns("*.env"))
    for example in tree.rglob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    out = subprocess.run(
        ["kubectl", "kustomize", str(tree / "base")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] in kinds]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (workload, container)
        for workload in by_kind(objects, *WORKLOAD_KINDS)
        for container in pod_spec(workload)["containers"] + pod_spec(workload).get("initContainers", [])
    ]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_secret_files_are_not_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/k3s"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [path for path in tracked if path.endswith(".env")]
    kustomization = yaml.safe_load((K3S / "base" / "kustomization.yaml").read_text())
    for generator in kustomization["secretGenerator"]:
        for env_file in generator["envs"]:
            assert (K3S / "base" / f"{env_file}.example").is_file(), env_file
            # git-ignored, so a filled-in copy can never be committed by accident
            ignored = subprocess.run(["git", "check-ignore", "-q", f"deploy/k3s/base/{env_file}"], cwd=REPO)
            assert ignored.returncode == 0, f"{env_file} is not git-ignored"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_standard_kinds_pass_strict_schema(rendered: list[dict[str, Any]], version: str) -> None:
    failures = []
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
    assert not failures


def test_every_long_running_container_has_resources_and_probes(rendered: list[dict[str, Any]]) -> None:
    for workload, container in containers(rendered):
        where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{where}: {bound}"
        if workload["kind"] == "Job":
            continue  # a one-shot run for seconds: nothing to probe (documented in the manifest)
        assert "livenessProbe" in container, where
        assert "readinessProbe" in container, where


def test_services_probe_healthz_and_readyz_on_their_image_port(rendered: list[dict[str, Any]]) -> None:
    # the port each image listens on, from the Dockerfile's `EXPOSE` per target
    exposed = dict(
        re.findall(r"^FROM runtime AS ([\w-]+)\n(?:.*\n)*?EXPOSE (\d+)", DOCKERFILE.read_text(), re.M)
    )
    assert set(exposed) == set(SERVICES)
    for workload, container in containers(by_kind(rendered, "Deployment")):
        service = container["image"].rsplit("/", 1)[1].split(":")[0]
        [port] = container["ports"]
        assert port["containerPort"] == int(exposed[service]), workload["metadata"]["name"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}


def test_every_container_is_locked_down(rendered: list[dict[str, Any]]) -> None:
    for workload, container in containers(rendered):
        where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
        pod = pod_spec(workload).get("securityContext", {})
        own = container.get("securityContext", {})
        assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
        assert own.get("runAsUser", pod.get("runAsUser", 0)) != 0, where
        assert own.get("readOnlyRootFilesystem") is True, where
        assert own.get("allowPrivilegeEscalation") is False, where
        assert own.get("capabilities", {}).get("drop") == ["ALL"], where
        # read-only root filesystem: the one scratch place is an emptyDir at /tmp
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        [tmp] = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[tmp["name"]], where


def test_images_are_the_multi_arch_tags_from_bake(rendered: list[dict[str, Any]]) -> None:
    bake = BAKE.read_text()
    registry = re.search(r'variable "REGISTRY" \{\s*default = "([^"]+)"', bake)
    version = re.search(r'variable "VERSION" \{\s*default = "([^"]+)"', bake)
    assert registry and version
    assert re.search(r'"\$\{REGISTRY\}/\$\{svc\}:\$\{VERSION\}"', bake)
    seen = set()
    for workload, container in containers(rendered):
        image = container["image"]
        name, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, f"{workload['metadata']['name']}: {image}"
        if name.startswith(registry.group(1) + "/"):
            service = name.removeprefix(registry.group(1) + "/")
            assert service in SERVICES and tag == version.group(1), image
            seen.add(service)
    assert seen == set(SERVICES)


def test_runner_pools_match_compose(rendered: list[dict[str, Any]]) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    compose_pools = {
        spec["environment"]["AGENT_RUNNER_AGENTS"]
        for spec in compose.values()
        if "AGENT_RUNNER_AGENTS" in spec.get("environment", {})
    }
    k3s_pools = {
        env_of(container)["AGENT_RUNNER_AGENTS"]
        for _, container in containers(by_kind(rendered, "Deployment"))
        if "AGENT_RUNNER_AGENTS" in env_of(container)
    }
    assert k3s_pools == compose_pools and len(k3s_pools) == 2


def test_provision_job_and_services_do_not_race(rendered: list[dict[str, Any]]) -> None:
    job = named(rendered, "Job", "provision")
    [container] = pod_spec(job)["containers"]
    assert container["command"] == ["python", "-m", "tripmesh_kit.provision"]
    assert env_of(container)["NATS_URL"] == "nats://nats:4222"
    for workload, container in containers(by_kind(rendered, "Deployment")):
        flags = {k: v for k, v in env_of(container).items() if k.endswith("PROVISION_STREAMS")}
        assert list(flags.values()) == ["false"], workload["metadata"]["name"]


def test_nats_runs_jetstream_on_a_pvc_synced_always(rendered: list[dict[str, Any]]) -> None:
    nats = named(rendered, "StatefulSet", "nats")
    [claim] = nats["spec"]["volumeClaimTemplates"]
    [container] = pod_spec(nats)["containers"]
    [data] = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    config_map = named(rendered, "ConfigMap", pod_spec(nats)["volumes"][0]["configMap"]["name"])
    conf = config_map["data"]["nats.conf"]
    assert re.search(rf"store_dir: {data['mountPath']}/", conf)
    assert re.search(r"^\s*sync_interval: always$", conf, re.M)
    assert re.search(r"^http_port: 8222$", conf, re.M)


def test_every_workload_has_a_disruption_budget(rendered: list[dict[str, Any]]) -> None:
    selectors = [pdb["spec"]["selector"]["matchLabels"] for pdb in by_kind(rendered, "PodDisruptionBudget")]
    for workload in by_kind(rendered, "Deployment", "StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(sel.items() <= labels.items() for sel in selectors), workload["metadata"]["name"]


def test_network_policies_deny_by_default_and_open_only_the_gateway(rendered: list[dict[str, Any]]) -> None:
    policies = by_kind(rendered, "NetworkPolicy")
    deny = named(rendered, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    unrestricted_ingress = [
        p["spec"]["podSelector"].get("matchLabels")
        for p in policies
        for rule in p["spec"].get("ingress", [])
        if "from" not in rule
    ]
    assert unrestricted_ingress == [{"app.kubernetes.io/name": "gateway"}]
    ingress = named(rendered, "Ingress", "gateway")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    # each datastore takes connections only from the pods labelled as its clients
    for store in DATASTORES:
        [policy] = [
            p
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": store}
        ]
        [rule] = policy["spec"]["ingress"]
        [peer] = rule["from"]
        assert set(peer) == {"podSelector"}, store


def test_services_reach_only_their_own_store(rendered: list[dict[str, Any]]) -> None:
    store_of_label = {
        "tripmesh.io/postgres-client": "postgres",
        "tripmesh.io/qdrant-client": "qdrant",
    }
    expected = {
        "gateway": {"postgres"},
        "planner": {"postgres"},
        "cost-ledger": {"postgres"},
        "vector-sync": {"qdrant"},
        "agent-runner-transport": set(),
        "agent-runner-general": set(),
    }
    for workload in by_kind(rendered, "Deployment"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        stores = {store for label, store in store_of_label.items() if labels.get(label) == "true"}
        assert labels.get("tripmesh.io/nats-client") == "true"
        assert stores == expected[workload["metadata"]["name"]], workload["metadata"]["name"]
