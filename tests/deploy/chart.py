"""deploy/helm/authgate rendered by the real Helm (bin/helm, pinned and cached), read back
as Kubernetes objects, and the few lookups the tests make on them."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..harness import REPO

CHART = REPO / "deploy" / "helm" / "authgate"
VALUES_DIR = CHART / "values"
VALUES_FILES = sorted(VALUES_DIR.glob("*.yaml"))
HELM = REPO / "bin" / "helm"
RELEASE = "ag"
NAMESPACE = "apps"
FULLNAME = f"{RELEASE}-authgate"
#: Building Helm the first time takes minutes (bin/setup does it); a render takes well
#: under a second.
HELM_TIMEOUT = 900


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=HELM_TIMEOUT, check=False
    )


def template(
    values: Sequence[Path] = (), sets: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return helm(*args)


@dataclass(frozen=True)
class Manifests:
    """The objects one `helm template` rendered."""

    objects: tuple[dict[str, Any], ...]

    @classmethod
    def render(cls, values: Sequence[Path] = (), sets: Sequence[str] = ()) -> Manifests:
        result = template(values, sets)
        if result.returncode != 0:
            raise AssertionError(f"helm template failed:\n{result.stderr}")
        return cls(tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.of_kind(kind)}

    def deployment(self, component: str) -> dict[str, Any]:
        return self.get("Deployment", f"{FULLNAME}-{component}")

    def pod_labels(self, component: str) -> dict[str, str]:
        labels: dict[str, str] = self.deployment(component)["spec"]["template"]["metadata"][
            "labels"
        ]
        return labels

    def selecting(self, kind: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The objects of `kind` (PodDisruptionBudget, NetworkPolicy) whose pod selector
        matches pods labelled `labels`."""
        found = []
        for o in self.of_kind(kind):
            spec = o["spec"]
            selector = (spec.get("podSelector") or spec.get("selector") or {}).get(
                "matchLabels", {}
            )
            if all(labels.get(k) == v for k, v in selector.items()):
                found.append(o)
        return found


def container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    first: dict[str, Any] = containers[0]
    return first


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def environment(
    manifests: Manifests, deployment: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """A container's environment as the kubelet would set it: each `secretKeyRef` read from
    a Secret the chart rendered, or from `secrets` (the operator's own, by name)."""
    rendered = {s["metadata"]["name"]: s.get("stringData", {}) for s in manifests.of_kind("Secret")}
    env = {}
    for item in container(deployment).get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        source = rendered.get(ref["name"], secrets.get(ref["name"]))
        assert source is not None, f"{item['name']}: Secret {ref['name']} is nowhere"
        env[item["name"]] = source[ref["key"]]
    return env


def mounts(deployment: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Mount path → (volume's source name: ConfigMap or Secret, subPath)."""
    pod = deployment["spec"]["template"]["spec"]
    sources = {}
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            sources[volume["name"]] = volume["configMap"]["name"]
        elif "secret" in volume:
            sources[volume["name"]] = volume["secret"]["secretName"]
        else:
            sources[volume["name"]] = "(emptyDir)"
    return {
        m["mountPath"]: (sources[m["name"]], m.get("subPath"))
        for m in container(deployment).get("volumeMounts", [])
    }


def peers(rule: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = rule.get("from", [])
    return found
