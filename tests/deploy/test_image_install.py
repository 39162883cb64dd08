"""The image's install step, performed outside Docker (nothing here can build an image).

For each service: copy what deploy/Dockerfile's build stage COPYs (minus the
.dockerignore'd folders) into a fresh directory, run that service's `uv sync` line from the
Dockerfile there into a fresh venv (offline: uv links from its warm cache), then import the
entrypoint module with that venv's Python and print the settings. Proof that the image would
hold what the service needs, and nothing from the repo's own venv or source tree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.dockerignore"

SERVICES = {
    "gateway": "tripmesh_gateway",
    "planner": "tripmesh_planner",
    "agent-runner": "tripmesh_agent_runner",
    "cost-ledger": "tripmesh_cost_ledger",
    "vector-sync": "tripmesh_vector_sync",
}

# Further proof per image: (code run with the venv's python, expected stdout). vector-sync:
# no download at start, its default embedder loads the weights shipped in the wordllama wheel
# (HOME and HF_HOME are empty folders, HF_HUB_OFFLINE=1).
EXTRA_PROBES = {
    "vector-sync": (
        "from tripmesh_vector_sync.embedders import WordLlamaEmbedder\n"
        "print(len(WordLlamaEmbedder().embed(['three days in Lisbon'])[0]))\n",
        "256",
    ),
}


def _stages(text: str) -> dict[str, list[str]]:
    """Dockerfile instructions (continuation lines joined) by stage name."""
    joined = re.sub(r"\\\n\s*", " ", text)
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if found:
            current = stages.setdefault(found.group(1), [])
        current.append(line)
    return stages


def _build_context_copies(stages: dict[str, list[str]]) -> list[str]:
    """The paths the shared build stage COPYs from the context (every COPY without --from)."""
    copies = []
    for line in stages["build"]:
        parts = line.split()
        if parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            copies.extend(parts[1:-1])
    return copies


def _install_command(stages: dict[str, list[str]], package: str) -> list[str]:
    [run] = [line for line in stages[f"build-{package}"] if line.startswith("RUN ")]
    return shlex.split(run[run.index("uv sync") :])


def _ignored_names() -> set[str]:
    """Names the .dockerignore drops at any depth (`**/<name>` lines)."""
    lines = DOCKERIGNORE.read_text().splitlines()
    return {line[3:] for line in lines if line.startswith("**/")}


@pytest.mark.parametrize("package", list(SERVICES))
def test_the_image_install_step_gives_the_service_what_it_needs(package: str, tmp_path: Path) -> None:
    stages = _stages(DOCKERFILE.read_text())
    context = tmp_path / "src"
    context.mkdir()
    ignore = shutil.ignore_patterns(*_ignored_names())
    for source in _build_context_copies(stages):
        origin, target = REPO / source, context / source
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=ignore)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)

    command = _install_command(stages, package)
    assert command[:2] == ["uv", "sync"] and "--frozen" in command and "--no-dev" in command
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    env |= {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    installed = subprocess.run(
        [shutil.which("uv") or "uv", *command[1:], "--offline"],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-4000:]

    module = SERVICES[package]
    probe = (
        f"import {module}.__main__, json\n"
        f"from {module}.settings import Settings\n"
        "print(Settings().model_dump_json())\n"
    )
    # the image's environment: the venv's python, no repo on the path, nothing downloaded
    clean = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    clean |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "TRIPMESH_DATA_DIR": str(tmp_path / "data")}
    started = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode == 0, started.stderr[-4000:]
    settings = json.loads(started.stdout.strip().splitlines()[-1])
    assert settings["service_name"] == package

    others = set(SERVICES.values()) - {module}
    site = next(venv.glob("lib/python*/site-packages"))
    assert not [name for name in others if (site / name).exists()], "an image holds another service"
    assert not (site / "tripmesh_devstack").exists(), "dev tooling leaked into the image"
    for pth in site.glob("*.pth"):
        assert str(context) not in pth.read_text(), f"{pth.name} links back into the source (editable)"

    if package in EXTRA_PROBES:
        extra = subprocess.run(
            [str(venv / "bin" / "python"), "-c", EXTRA_PROBES[package][0]],
            cwd=tmp_path,
            env=clean | {"HF_HOME": str(tmp_path / "hf")},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert extra.returncode == 0, extra.stderr[-4000:]
        assert extra.stdout.strip() == EXTRA_PROBES[package][1]
