"""Validate the Kubernetes manifests: render each kustomization, check every object against
the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors), and
check the promises the README makes about them.

Rendering: `kubectl kustomize` is not installable from the package registries CI reaches, so
this script renders the few kustomize features the manifests use (resources, labels with
selectors, nameSuffix, images, strategic-merge patches). Where kubectl is installed, the
result must equal `kubectl kustomize`'s, which keeps this renderer honest.

Usage: python deploy/validate.py   (exit 1 on any problem)
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

K8S_VERSION = "1.32.0"
ROOT = Path(__file__).resolve().parent / "k8s"
KUSTOMIZATIONS = [ROOT / "base", ROOT / "overlays" / "gpu", ROOT / "overlays" / "model-volume"]
# Manifests applied on their own (`kubectl apply -f`), outside any kustomization.
STANDALONE = [ROOT / "overlays" / "model-volume" / "loader-pod.yaml"]
# Fields that hold label selectors, per kind (what `includeSelectors` reaches).
SELECTOR_PATHS = {
    "Deployment": [("spec", "selector", "matchLabels"), ("spec", "template", "metadata", "labels")],
    "Service": [("spec", "selector")],
    "PodDisruptionBudget": [("spec", "selector", "matchLabels")],
}


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for these manifests: maps merge, lists of named
    maps merge by name, other values (and other lists) are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        by_name = {item["name"]: item for item in base}
        result = [merge(by_name[i["name"]], i) if i["name"] in by_name else i for i in patch]
        patched = {i["name"] for i in patch}
        # kustomize puts patch entries first, then the base's others in their order.
        return result + [item for item in base if item["name"] not in patched]
    return copy.deepcopy(patch)


def _set_labels(obj: dict[str, Any], pairs: dict[str, str], selectors: bool) -> None:
    obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    if not selectors:
        return
    for path in SELECTOR_PATHS.get(obj["kind"], []):
        node = obj
        for key in path:
            node = node.setdefault(key, {})
        node.update(pairs)


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects a kustomization produces."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = folder / resource
        if path.is_dir():
            objects += render(path)
        else:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch_entry in spec.get("patches", []):
        patch = yaml.safe_load((folder / patch_entry["path"]).read_text())
        target = patch_entry.get("target", {})
        for index, obj in enumerate(objects):
            if obj["kind"] == target.get("kind", patch["kind"]) and obj["metadata"][
                "name"
            ] == target.get("name", patch["metadata"]["name"]):
                objects[index] = merge(obj, patch)
    for label in spec.get("labels", []):
        for obj in objects:
            _set_labels(obj, label["pairs"], label.get("includeSelectors", False))
    for image in spec.get("images", []):
        for obj in objects:
            for container in (
                obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            ):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    suffix = spec.get("nameSuffix", "")
    if suffix:
        names = {obj["metadata"]["name"] for obj in objects}
        for obj in objects:
            obj["metadata"]["name"] += suffix
            ref = obj.get("spec", {}).get("scaleTargetRef")
            if ref and ref["name"] in names:
                ref["name"] += suffix
    return objects


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def check_promises(objects: list[dict[str, Any]]) -> list[str]:
    """What the README and the service rely on."""
    problems = []
    by_kind = {obj["kind"]: obj for obj in objects}
    deployment = by_kind["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    grace = float(env.get("SYNERGY_SHUTDOWN_GRACE_PERIOD_S") or 30)
    pre_stop_command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
    pre_stop = float(pre_stop_command.get("command", ["sleep", "0"])[-1])  # ["sleep", "5"]
    if pod.get("terminationGracePeriodSeconds", 30) < grace + pre_stop:
        problems.append("terminationGracePeriodSeconds is shorter than the drain + preStop")
    for probe, path in (
        ("livenessProbe", "/health/live"),
        ("startupProbe", "/health/ready"),
    ):
        if container.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"{probe} must GET {path}")
    problems += _check_grpc(container, env, by_kind["Service"])
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append("the pod must run as non-root")
    if not {"requests", "limits"} <= set(container.get("resources", {})):
        problems.append("resource requests and limits must both be set")
    selector = deployment["spec"]["selector"]["matchLabels"]
    for kind in ("Service", "PodDisruptionBudget"):
        obj = by_kind[kind]
        chosen = obj["spec"]["selector"]
        chosen = chosen.get("matchLabels", chosen)
        if chosen != selector:
            problems.append(f"the {kind} selects {chosen}, the Deployment's pods are {selector}")
    hpa = by_kind["HorizontalPodAutoscaler"]
    if hpa["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        problems.append("the HPA does not target the Deployment")
    claim = by_kind.get("PersistentVolumeClaim")
    if claim is not None:
        problems += _check_model_volume(claim["metadata"]["name"], pod, container, env)
    return problems


def _check_grpc(
    container: dict[str, Any], env: dict[str, Any], service: dict[str, Any]
) -> list[str]:
    """The gRPC port is declared where the server listens, the readiness probe asks its
    health service for the readiness service name, and the Service exposes it."""
    problems = []
    port = int(env.get("SYNERGY_GRPC_PORT") or 8081)
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if ports.get("grpc") != port:
        problems.append(f"the container must declare port grpc = {port} (SYNERGY_GRPC_PORT)")
    probe = container.get("readinessProbe", {}).get("grpc", {})
    if probe.get("port") != port or probe.get("service") != "inference.GRPCInferenceService":
        problems.append(
            f"readinessProbe must be grpc on port {port}, service inference.GRPCInferenceService"
        )
    if not any(p.get("targetPort") == "grpc" for p in service["spec"]["ports"]):
        problems.append("the Service must expose the grpc port")
    return problems


def _check_model_volume(
    claim: str, pod: dict[str, Any], container: dict[str, Any], env: dict[str, Any]
) -> list[str]:
    """The model-volume overlay: the server reads the claim, read-only, as its models dir,
    and polls it."""
    problems = []
    volumes = {
        v["name"]: v["persistentVolumeClaim"]
        for v in pod.get("volumes", [])
        if v.get("persistentVolumeClaim", {}).get("claimName") == claim
    }
    mounts = [m for m in container.get("volumeMounts", []) if m["name"] in volumes]
    models_dir = env.get("SYNERGY_MODELS_DIR") or "/srv/models"
    if not any(m["mountPath"] == models_dir and m.get("readOnly") for m in mounts):
        problems.append(f"the claim {claim} must be mounted read-only at {models_dir}")
    if not all(v.get("readOnly") for v in volumes.values()):
        problems.append(f"the server's volume of the claim {claim} must be readOnly")
    if float(env.get("SYNERGY_MODEL_POLL_S") or 0) <= 0:
        problems.append("SYNERGY_MODEL_POLL_S must be > 0, or new versions are never seen")
    return problems


def validate_standalone(path: Path) -> list[str]:
    """Problems of a manifest applied with `kubectl apply -f`."""
    problems = []
    for obj in (d for d in yaml.safe_load_all(path.read_text()) if d):
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    return problems


def main() -> int:
    kubectl = shutil.which("kubectl")
    failures = 0
    for folder in KUSTOMIZATIONS:
        label = folder.relative_to(ROOT.parent)
        objects = render(folder)
        problems = []
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
        problems += check_promises(objects)
        if kubectl:
            rendered = subprocess.run(
                [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=True
            ).stdout
            theirs = sorted((d for d in yaml.safe_load_all(rendered) if d), key=_key)
            if sorted(objects, key=_key) != theirs:
                problems.append("this renderer and `kubectl kustomize` disagree")
        status = "FAIL" if problems else "ok"
        checked = f"{len(objects)} objects checked against Kubernetes {K8S_VERSION} (strict)"
        cross = ", same as kubectl kustomize" if kubectl and not problems else ""
        print(f"{status:4} {label}: {checked}{cross}")
        for problem in problems:
            print(f"     - {problem}")
        failures += bool(problems)
    for path in STANDALONE:
        problems = validate_standalone(path)
        status = "FAIL" if problems else "ok"
        label = path.relative_to(ROOT.parent)
        print(f"{status:4} {label}: checked against Kubernetes {K8S_VERSION} (strict)")
        for problem in problems:
            print(f"     - {problem}")
        failures += bool(problems)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
