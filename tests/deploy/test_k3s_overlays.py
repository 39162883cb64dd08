"""deploy/k3s overlays (hpa, oracle-a1, ha) and components (keda, hpa): every overlay renders
with the real `kubectl kustomize`; standard kinds pass `kubernetes-validate --strict` for the
Kubernetes versions current k3s ships; custom resources (KEDA ScaledObject, CloudNativePG
Cluster) pass their vendored CRD's openAPIV3Schema (deploy/k3s/schemas, see SOURCE.md), with
unknown fields rejected as the API server's pruning would drop them; and the policy of
test_k3s.py holds on what each overlay renders, plus what each overlay promises."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from tripmesh_agent_runner.settings import Settings as AgentRunnerSettings
from tripmesh_contracts.plans import AgentName
from tripmesh_contracts.streams import AGENT_JOBS, runner_consumer

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "deploy" / "k3s" / "schemas"
OVERLAYS = ("overlays/hpa", "overlays/oracle-a1", "overlays/ha")
KEDA_OVERLAYS = ("overlays/oracle-a1", "overlays/ha")
KUBERNETES_VERSIONS = ("1.33.0", "1.36.0")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
Obj = dict[str, Any]
Render = Callable[[str], list[Obj]]


def _crd_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> openAPIV3Schema, for every served version of every vendored CRD."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            if version["served"]:
                key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


CRDS = _crd_schemas()


def closed(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever the API server would prune them (an
    object with `properties`, no `additionalProperties`, no preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: closed(v) if k != "properties" else {p: closed(s) for p, s in v.items()} for k, v in schema.items()
    }
    open_ended = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and not open_ended:
        out["additionalProperties"] = False
    return out


def custom(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if (o["apiVersion"], o["kind"]) in CRDS]


def by_kind(objects: list[Obj], *kinds: str) -> list[Obj]:
    return [o for o in objects if o["kind"] in kinds]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def env_of(container: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_vendored_schemas_are_the_ones_the_overlays_need() -> None:
    assert set(CRDS) == {("keda.sh/v1alpha1", "ScaledObject"), ("postgresql.cnpg.io/v1", "Cluster")}
    source = (SCHEMAS / "SOURCE.md").read_text()
    for path in SCHEMAS.glob("*.yaml"):
        assert path.name in source


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_standard_kinds_pass_strict_schema(render_k3s: Render, overlay: str, version: str) -> None:
    failures = []
    for obj in render_k3s(overlay):
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
    assert not failures


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_pass_their_crd_schema(render_k3s: Render, overlay: str) -> None:
    failures = []
    for obj in custom(render_k3s(overlay)):
        validator = jsonschema.Draft7Validator(closed(CRDS[(obj["apiVersion"], obj["kind"])]))
        failures += [
            f"{obj['kind']}/{obj['metadata']['name']}: {e.message}" for e in validator.iter_errors(obj)
        ]
    assert not failures


def test_crd_check_rejects_what_the_api_server_would_not_keep() -> None:
    scaled = next(yaml.safe_load_all((REPO / "deploy/k3s/components/keda/scaledobjects.yaml").read_text()))
    schema = closed(CRDS[("keda.sh/v1alpha1", "ScaledObject")])
    jsonschema.validate(scaled, schema)
    broken_specs: tuple[Obj, ...] = (
        {"minReplicas": 1},
        {"maxReplicaCount": "four"},
        {"triggers": [{"metadata": {}}]},
    )
    for broken in broken_specs:
        bad = copy.deepcopy(scaled)
        bad["spec"].update(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_bounded_probed_and_locked_down(render_k3s: Render, overlay: str) -> None:
    for workload in by_kind(render_k3s(overlay), *WORKLOAD_KINDS):
        pod = pod_spec(workload)
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{overlay}: {workload['kind']}/{workload['metadata']['name']}/{container['name']}"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container.get("resources", {}).get(bound, {})), where
            if workload["kind"] != "Job":
                assert "livenessProbe" in container and "readinessProbe" in container, where
            own, pod_sc = container.get("securityContext", {}), pod.get("securityContext", {})
            assert own.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert own.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, where
            assert own.get("readOnlyRootFilesystem") is True, where
            assert own.get("allowPrivilegeEscalation") is False, where
            assert own.get("capabilities", {}).get("drop") == ["ALL"], where
            name, _, tag = container["image"].rpartition(":")
            assert tag and tag != "latest" and "/" not in tag, where
            if name.startswith("ghcr.io/tripmesh/"):
                assert tag == "0.1.0" or re.fullmatch(r"\d+\.\d+\.\d+", tag), where
    for cluster in by_kind(render_k3s(overlay), "Cluster"):
        assert {"cpu", "memory"} <= set(cluster["spec"]["resources"]["requests"])
        assert {"cpu", "memory"} <= set(cluster["spec"]["resources"]["limits"])
        assert not cluster["spec"]["imageName"].endswith(":latest")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_the_namespace(render_k3s: Render, overlay: str) -> None:
    for obj in render_k3s(overlay):
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "tripmesh", f"{obj['kind']}/{obj['metadata']['name']}"


def nats_config(objects: list[Obj]) -> str:
    """The nats.conf the NATS StatefulSet mounts (the ConfigMap's name carries a hash)."""
    [volume] = [v for v in pod_spec(named(objects, "StatefulSet", "nats"))["volumes"] if "configMap" in v]
    conf: str = named(objects, "ConfigMap", volume["configMap"]["name"])["data"]["nats.conf"]
    return conf


def runner_pools(objects: list[Obj]) -> dict[str, list[str]]:
    """Runner Deployment name -> the agent types it serves (AGENT_RUNNER_AGENTS)."""
    pools = {}
    for deployment in by_kind(objects, "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            if agents := env_of(container).get("AGENT_RUNNER_AGENTS"):
                pools[deployment["metadata"]["name"]] = agents.split(",")
    return pools


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_a_scaled_object_per_pool_with_a_trigger_per_consumer(render_k3s: Render, overlay: str) -> None:
    objects = render_k3s(overlay)
    pools = runner_pools(objects)
    assert sorted(a for agents in pools.values() for a in agents) == sorted(a.value for a in AgentName)
    nats_conf = nats_config(objects)
    [monitor_port] = re.findall(r"^http_port: (\d+)$", nats_conf, re.M)
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so for so in by_kind(objects, "ScaledObject")}
    assert set(scaled) == set(pools)
    concurrency = AgentRunnerSettings.model_fields["concurrency"].default
    for name, agents in pools.items():
        so = scaled[name]
        assert so["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        # the autoscaler owns the replica count: none in the Deployment for apply to reset
        assert "replicas" not in named(objects, "Deployment", name)["spec"]
        assert 1 <= so["spec"]["minReplicaCount"] < so["spec"]["maxReplicaCount"]
        triggers = so["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"nats-jetstream"}
        consumers = [t["metadata"]["consumer"] for t in triggers]
        assert consumers == [runner_consumer(agent).durable for agent in agents]
        for trigger in triggers:
            meta = trigger["metadata"]
            assert meta["stream"] == AGENT_JOBS.name == runner_consumer(agents[0]).stream
            assert meta["natsServerMonitoringEndpoint"] == f"nats.tripmesh.svc.cluster.local:{monitor_port}"
            assert meta["account"] == "$G"  # nats.conf defines no accounts
            # documented in scaledobjects.yaml: two batches of the runner's concurrency
            assert int(meta["lagThreshold"]) == 2 * concurrency
    # KEDA (namespace keda) may reach the monitoring port despite the default deny
    policy = named(objects, "NetworkPolicy", "nats-monitoring-from-keda")
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": int(monitor_port)}]


def test_hpa_overlay_needs_no_keda_and_keeps_keda_s_bounds(render_k3s: Render) -> None:
    objects = render_k3s("overlays/hpa")
    assert not by_kind(objects, "ScaledObject") and not custom(objects)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(objects, "HorizontalPodAutoscaler")}
    assert set(hpas) == set(runner_pools(objects))
    keda = {
        s["spec"]["scaleTargetRef"]["name"]: s["spec"]
        for s in by_kind(render_k3s("overlays/oracle-a1"), "ScaledObject")
    }
    for name, hpa in hpas.items():
        assert "replicas" not in named(objects, "Deployment", name)["spec"]
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
            keda[name]["minReplicaCount"],
            keda[name]["maxReplicaCount"],
        )
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"


def test_oracle_a1_runs_on_arm64_with_local_path_storage(render_k3s: Render) -> None:
    objects = render_k3s("overlays/oracle-a1")
    for workload in by_kind(objects, *WORKLOAD_KINDS):
        assert pod_spec(workload)["nodeSelector"] == {"kubernetes.io/arch": "arm64"}, workload["metadata"][
            "name"
        ]
    statefulsets = by_kind(objects, "StatefulSet")
    assert {s["metadata"]["name"] for s in statefulsets} == {"nats", "postgres", "qdrant"}
    for statefulset in statefulsets:
        for claim in statefulset["spec"]["volumeClaimTemplates"]:
            assert claim["spec"]["storageClassName"] == "local-path"
