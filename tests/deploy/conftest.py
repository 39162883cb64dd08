"""Rendering deploy/k3s overlays once per session, shared by the k3s tests.

The secret files are git-ignored (only `*.example` is committed), so the render runs on a
copy of deploy/k3s where each example stands in for its real file, as an operator's
`cp x.env.example x.env` would."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

K3S = Path(__file__).resolve().parents[2] / "deploy" / "k3s"

Rendered = list[dict[str, Any]]


@pytest.fixture(scope="session")
def k3s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("k3s-overlays") / "k3s"
    shutil.copytree(K3S, tree, ignore=shutil.ignore_patterns("*.env"))
    for example in tree.rglob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    return tree


@pytest.fixture(scope="session")
def render_k3s(k3s_tree: Path) -> Callable[[str], Rendered]:
    """`render_k3s("overlays/oracle-a1")`: the objects `kubectl kustomize` renders (cached)."""
    cache: dict[str, Rendered] = {}

    def render(kustomization: str) -> Rendered:
        if kustomization not in cache:
            out = subprocess.run(
                ["kubectl", "kustomize", str(k3s_tree / kustomization)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert out.returncode == 0, out.stderr
            cache[kustomization] = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
        return cache[kustomization]

    return render
