"""overlays/ha: what it promises, on the rendered objects — a three-node NATS JetStream
cluster whose routes name every pod and whose streams are provisioned at R3, Postgres as a
CloudNativePG Cluster of 3 (base's StatefulSet gone, `postgres:5432` on the primary), Qdrant
with 3 replicas in cluster mode, more runners than oracle-a1, and the secret files git-ignored."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tripmesh_contracts.streams import ALL_STREAMS
from tripmesh_kit.provision import streams_with_replicas

REPO = Path(__file__).resolve().parents[2]
HA = REPO / "deploy" / "k3s" / "overlays" / "ha"
Obj = dict[str, Any]


@pytest.fixture
def ha(render_k3s: Callable[[str], list[Obj]]) -> list[Obj]:
    return render_k3s("overlays/ha")


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def container(workload: Obj) -> Obj:
    [only] = workload["spec"]["template"]["spec"]["containers"]
    found: Obj = only
    return found


def env_of(c: Obj) -> dict[str, Any]:
    env: dict[str, Any] = {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}
    return env


def test_nats_is_a_three_node_cluster_with_streams_at_r3(ha: list[Obj]) -> None:
    nats = named(ha, "StatefulSet", "nats")
    replicas = nats["spec"]["replicas"]
    assert replicas == 3
    [volume] = [v for v in nats["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    conf = named(ha, "ConfigMap", volume["configMap"]["name"])["data"]["nats.conf"]
    [cluster_port] = re.findall(r"^\s+port: (\d+)$", conf, re.M)
    routes = re.findall(r"nats://([\w.-]+):(\d+)", conf)
    governing = nats["spec"]["serviceName"]
    assert routes == [(f"nats-{i}.{governing}", cluster_port) for i in range(replicas)]
    assert re.search(r"^server_name: \$POD_NAME$", conf, re.M)
    assert env_of(container(nats))["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {"name": "cluster", "containerPort": int(cluster_port)} in container(nats)["ports"]
    headless = named(ha, "Service", governing)
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert int(cluster_port) in {p["port"] for p in headless["spec"]["ports"]}
    assert re.search(r"^\s*sync_interval: always$", conf, re.M)
    # the provision Job creates every stream at the cluster's size
    job = named(ha, "Job", "provision")
    assert env_of(container(job))["TRIPMESH_STREAM_REPLICAS"] == str(replicas)
    assert {s.replicas for s in streams_with_replicas(replicas)} == {replicas}
    assert [s.name for s in streams_with_replicas(replicas)] == [s.name for s in ALL_STREAMS]
    assert streams_with_replicas(None) == list(ALL_STREAMS)


def test_postgres_is_a_cloudnativepg_cluster_behind_the_same_service(ha: list[Obj]) -> None:
    assert not [o for o in ha if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "postgres"]
    assert not [o for o in ha if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "postgres"]
    cluster = named(ha, "Cluster", "postgres")
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["postgresql"]["synchronous"]["number"] >= 1
    secret = named(ha, "Secret", cluster["spec"]["superuserSecret"]["name"])
    assert secret["type"] == "kubernetes.io/basic-auth" and {"username", "password"} <= set(secret["data"])
    service = named(ha, "Service", "postgres")
    assert service["spec"]["selector"]["cnpg.io/instanceRole"] == "primary"
    assert service["spec"]["selector"]["cnpg.io/cluster"] == cluster["metadata"]["name"]
    # base's NetworkPolicies select the instances by the label the Cluster passes on
    labels = cluster["spec"]["inheritedMetadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "postgres"


def test_qdrant_replicates_across_three_peers(ha: list[Obj]) -> None:
    qdrant = named(ha, "StatefulSet", "qdrant")
    assert qdrant["spec"]["replicas"] == 3
    env = env_of(container(qdrant))
    assert env["QDRANT__CLUSTER__ENABLED"] == "true"
    assert env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"] == "3"
    p2p = env["QDRANT__CLUSTER__P2P__PORT"]
    script = container(qdrant)["args"][0]
    governing = qdrant["spec"]["serviceName"]
    assert f"http://qdrant-0.{governing}:{p2p}" in script and script.count("exec ") == 2
    assert int(p2p) in {p["port"] for p in named(ha, "Service", governing)["spec"]["ports"]}


def test_ha_runs_more_runners_than_one_node(ha: list[Obj], render_k3s: Callable[[str], list[Obj]]) -> None:
    single = {
        o["metadata"]["name"]: o["spec"]
        for o in render_k3s("overlays/oracle-a1")
        if o["kind"] == "ScaledObject"
    }
    for scaled in (o for o in ha if o["kind"] == "ScaledObject"):
        spec = single[scaled["metadata"]["name"]]
        assert scaled["spec"]["minReplicaCount"] > spec["minReplicaCount"]
        assert scaled["spec"]["maxReplicaCount"] > spec["maxReplicaCount"]


def test_datastore_peers_spread_over_nodes_and_may_talk(ha: list[Obj]) -> None:
    for name in ("nats", "qdrant"):
        spec = named(ha, "StatefulSet", name)["spec"]["template"]["spec"]
        [term] = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
    for policy, port in (("nats-cluster-routes", 6222), ("qdrant-cluster-p2p", 6335)):
        spec = named(ha, "NetworkPolicy", policy)["spec"]
        assert spec["ingress"][0]["ports"] == [{"protocol": "TCP", "port": port}]
        assert spec["egress"][0]["ports"] == [{"protocol": "TCP", "port": port}]


def test_ha_secret_files_are_git_ignored() -> None:
    for example in HA.rglob("*.env.example"):
        real = example.with_suffix("").relative_to(REPO)
        assert subprocess.run(["git", "check-ignore", "-q", str(real)], cwd=REPO).returncode == 0, real
