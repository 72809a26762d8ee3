"""deploy/k8s: every manifest is a valid Kubernetes object (offline schemas of an old and a new release),
the folder holds only what `kubectl apply -k` applies, and the pieces that make a cluster heal agree with
the service: probes name real routes with the right meaning, the HPA alone owns the replica count, pods
drain before they stop, and every STICKERS_* variable is a setting the service knows."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSIONS = ("1.27.0", "1.37.0")  # the oldest and newest schemas kubernetes-validate ships that we support


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def documents() -> list[dict[str, Any]]:
    docs = []
    for name in kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def service_container() -> dict[str, Any]:
    return find("Deployment", "stickers")["spec"]["template"]["spec"]["containers"][0]


def test_the_folder_holds_only_applied_objects() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.iterdir() if p.suffix in (".yaml", ".yml", ".json")} - {"kustomization.yaml"}
    assert listed == present, f"unlisted: {present - listed}, missing: {listed - present}"
    kinds = {d["kind"] for d in documents()}
    assert "Secret" not in kinds  # secrets are created out of band (deploy/examples/)
    assert all("apiVersion" in d and "metadata" in d for d in documents())


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schema(version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in documents():
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError with the path


def test_a_broken_manifest_is_caught() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken = find("Deployment", "stickers")
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = ["http"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize) to render the folder")
def test_the_rendered_kustomization_validates() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True)
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(rendered) == len(documents())
    for doc in rendered:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "stickers"
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_probes_name_real_routes_with_the_right_meaning() -> None:
    from service.app import create_app

    routes = set(create_app(Settings(model=Path("unused"))).openapi()["paths"])
    container = service_container()
    probes = {kind: container[kind]["httpGet"]["path"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes == {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
    assert set(probes.values()) <= routes
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # a real model load is not cut short


def test_the_hpa_alone_owns_the_replica_count_and_pods_drain() -> None:
    hpa = find("HorizontalPodAutoscaler", "stickers")
    deployment = find("Deployment", hpa["spec"]["scaleTargetRef"]["name"])
    assert "replicas" not in deployment["spec"]
    pod = deployment["spec"]["template"]["spec"]
    sleep = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and int(sleep[1]) < pod["terminationGracePeriodSeconds"]
    assert find("PodDisruptionBudget", "stickers")["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_every_stickers_variable_is_a_service_setting() -> None:
    known = {f"STICKERS_{name.upper()}" for name in Settings.model_fields}
    names = set(find("ConfigMap", "stickers-config")["data"])
    names |= {e["name"] for e in service_container()["env"]}
    unknown = {n for n in names if n.startswith("STICKERS_")} - known
    assert not unknown, unknown
    assert "STICKERS_REDIS_URL" not in find("ConfigMap", "stickers-config")["data"]  # it carries the password


def test_jobs_are_templates_that_run_nothing_on_apply() -> None:
    jobs = [d for d in documents() if d["kind"] in ("Job", "CronJob")]
    assert {d["metadata"]["name"] for d in jobs} == {"stickers-prepare", "stickers-reindex"}
    assert all(d["kind"] == "CronJob" and d["spec"]["suspend"] is True for d in jobs)
    claim = find("PersistentVolumeClaim", "stickers-data")
    for job in jobs:
        volumes = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
        assert {v["persistentVolumeClaim"]["claimName"] for v in volumes} == {claim["metadata"]["name"]}
