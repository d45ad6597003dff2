"""The Kubernetes files as ``kubectl apply -f deploy/kubernetes/`` reads them.

kubectl reads, from a folder given to ``-f`` (without ``-R``), every file directly inside
it whose name ends in ``.json``, ``.yaml`` or ``.yml``, each as a stream of documents.
The example Secret lives outside that folder (deploy/kubernetes-secret.example.yaml), so
that applying the folder never replaces a real key with its placeholder (issue 19 item 10).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml

from tests.support.procs import REPO

DEPLOY: Final = REPO / "deploy"
MANIFESTS: Final = DEPLOY / "kubernetes"
EXAMPLE_SECRET: Final = DEPLOY / "kubernetes-secret.example.yaml"
# The extensions kubectl's file visitor accepts in a folder (k8s.io/cli-runtime resource).
KUBECTL_EXTENSIONS: Final = (".json", ".yaml", ".yml")
# Every value a user must replace in a shipped example starts with this.
PLACEHOLDER_MARK: Final = "REPLACE-WITH"


def applied_files(path: Path = MANIFESTS) -> list[Path]:
    """The files ``kubectl apply -f PATH`` reads: the file itself, or a folder's own files."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in KUBECTL_EXTENSIONS)


def load(path: Path) -> list[dict[str, Any]]:
    """The non-empty documents of one manifest file."""
    text = path.read_text()
    if path.suffix == ".json":
        return [json.loads(text)]
    return [doc for doc in yaml.safe_load_all(text) if doc]


def applied_documents(path: Path = MANIFESTS) -> list[dict[str, Any]]:
    """Every object ``kubectl apply -f PATH`` would create or replace."""
    return [doc for file in applied_files(path) for doc in load(file)]


def by_kind(kind: str) -> dict[str, Any]:
    """The one applied object of ``kind``."""
    matches = [doc for doc in applied_documents() if doc["kind"] == kind]
    assert len(matches) == 1, kind
    return matches[0]


def example_secret() -> dict[str, Any]:
    (secret,) = load(EXAMPLE_SECRET)
    return secret


def strings(value: object) -> Iterator[str]:
    """Every string in a parsed document, keys and values, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def container_env() -> dict[str, str]:
    """The falproxy container's environment: envFrom (ConfigMap, the Secret), then env.

    The Secret is the shipped example (it is created out of band); the mounted TOML file
    is left out, since it is a file, not a variable.
    """
    deployment = by_kind("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    configmap, secret = by_kind("ConfigMap"), example_secret()
    sources = {
        ("configMapRef", configmap["metadata"]["name"]): configmap["data"],
        ("secretRef", secret["metadata"]["name"]): secret["stringData"],
    }
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        ((kind, ref),) = source.items()
        env.update({k: str(v) for k, v in sources[(kind, ref["name"])].items()})
    env.pop("falproxy.toml")
    env.update({item["name"]: str(item["value"]) for item in container["env"]})
    return env
