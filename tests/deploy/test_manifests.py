"""The Kubernetes manifests under deploy/k8s: valid against the Kubernetes schemas (offline, from
`kubernetes-validate`), KEDA's ScaledObject against our own schema, and consistent with the code
(setting names, consumer group, topic, partitions, the image's uid)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kube
from pydantic_settings import BaseSettings

from stt_common import settings as stt_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBE_VERSION = "1.30.0"
KEDA_SCHEMA = json.loads((Path(__file__).parent / "keda-scaledobject.schema.json").read_text())
# Read by the code directly from the environment rather than through a settings class.
EXTRA_ENV = {"STT_LOG_FORMAT"}


def docs_in(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
ALL = [(p, d) for p in MANIFESTS for d in docs_in(p)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in ALL if d["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return found


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in of_kind("Deployment")
    ] + [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in of_kind("Job")] + [
        (d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        for d in of_kind("CronJob")
    ]


def known_settings() -> set[str]:
    names = set(EXTRA_ENV)
    for cls in vars(stt_settings).values():
        if (
            isinstance(cls, type)
            and issubclass(cls, BaseSettings)
            and cls.__module__ == stt_settings.__name__
        ):
            names |= {stt_settings.env_name(cls, field) for field in cls.model_fields}
    return names


def dockerfile_uid() -> int:
    match = re.search(r"useradd .*--uid (\d+)", (ROOT / "deploy/docker/Dockerfile").read_text())
    assert match, "the Dockerfile creates no user with a fixed uid"
    return int(match.group(1))


def test_there_are_manifests_and_each_is_a_named_object() -> None:
    assert len(ALL) >= 10
    for path, doc in ALL:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
        assert doc["metadata"].get("name"), path


@pytest.mark.parametrize("kustomization", sorted(K8S.rglob("kustomization.yaml")), ids=str)
def test_kustomization_lists_every_file_and_only_existing_ones(kustomization: Path) -> None:
    config = yaml.safe_load(kustomization.read_text())
    listed = config["resources"]
    here = {p.name for p in kustomization.parent.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(r for r in listed if not r.startswith("..")) == sorted(here)
    for resource in listed:
        assert (kustomization.parent / resource).exists(), resource


@pytest.mark.parametrize(
    ("path", "doc"),
    [(p, d) for p, d in ALL if not d["apiVersion"].startswith("keda.sh/")],
    ids=lambda v: v.name if isinstance(v, Path) else v["kind"],
)
def test_core_kinds_are_valid_kubernetes(path: Path, doc: dict[str, Any]) -> None:
    kube.validate(doc, KUBE_VERSION, strict=True)


def test_scaled_objects_match_the_keda_schema_and_the_code() -> None:
    objects = of_kind("ScaledObject")
    assert objects
    config = named("ConfigMap", "stt-config")["data"]
    kafka = stt_settings.KafkaSettings()
    for obj in objects:
        jsonschema.validate(obj, KEDA_SCHEMA)
        target = obj["spec"]["scaleTargetRef"]["name"]
        named("Deployment", target)
        triggers = obj["spec"]["triggers"]
        for trigger in triggers:
            meta = trigger["metadata"]
            group = meta["consumerGroup"]
            assert group == config["KAFKA_TRANSCRIBER_GROUP"] == kafka.transcriber_group
            assert meta["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
        # Scaled on the lag of every lane (KEDA takes the largest answer).
        assert [t["metadata"]["topic"] for t in triggers] == list(kafka.submit_topics())
        assert obj["spec"]["maxReplicaCount"] <= int(config["KAFKA_TOPIC_PARTITIONS"])


def test_keda_schema_rejects_a_typo() -> None:
    obj = named("ScaledObject", "stt-transcriber")
    broken = json.loads(json.dumps(obj))
    broken["spec"]["triggers"][0]["metadata"].pop("consumerGroup")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, KEDA_SCHEMA)


def test_every_setting_named_is_a_real_setting() -> None:
    known = known_settings()
    names = set(named("ConfigMap", "stt-config")["data"])
    names |= set(named("Secret", "stt-secrets")["stringData"])
    for _, spec in pod_specs():
        for container in spec["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
    assert names - known == set()


def test_secret_holds_placeholders_only() -> None:
    secret = named("Secret", "stt-secrets")
    assert all(v.startswith("CHANGE-ME") for v in secret["stringData"].values())


def test_pods_run_as_the_images_user_with_resources() -> None:
    uid = dockerfile_uid()
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == uid, name
        for container in spec["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), name
            assert {"cpu", "memory"} <= resources["limits"].keys(), name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert not container["image"].endswith(":latest"), name


def test_api_probes_service_and_autoscaler() -> None:
    api = named("Deployment", "stt-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    ports = {p["name"] for p in container["ports"]}
    service = named("Service", "stt-api")
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    hpa = named("HorizontalPodAutoscaler", "stt-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "stt-api",
    }


def test_workers_and_topics_job() -> None:
    grace = stt_settings.WorkerSettings().shutdown_grace
    for name in ("stt-transcriber", "stt-transcriber-gpu"):
        spec = named("Deployment", name)["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > grace
    gpu = named("Deployment", "stt-transcriber-gpu")["spec"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {e["name"]: e["value"] for e in gpu["env"]}["STT_DEVICE"] == "cuda"
    job = named("Job", "stt-topics")["spec"]["template"]["spec"]["containers"][0]
    assert job["args"] == ["topics"]
    cron = named("CronJob", "stt-uploads-prune")["spec"]["jobTemplate"]["spec"]["template"]
    assert cron["spec"]["containers"][0]["args"] == ["uploads", "prune"]


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed"
)
@pytest.mark.parametrize("target", ["base", "overlays/gpu"])
def test_kustomize_builds(target: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert all(d["metadata"].get("namespace", "stt") == "stt" for d in built)
    images = {
        c["image"]
        for d in built
        if d["kind"] in ("Deployment", "Job", "CronJob")
        for c in (
            d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
        )["template"]["spec"]["containers"]
    }
    assert all(i.startswith("registry.example.com/") and ":" in i for i in images), images


def test_webhooks_deployment_group_and_secret() -> None:
    (container,) = named("Deployment", "stt-webhooks")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["webhooks"]
    config = named("ConfigMap", "stt-config")["data"]
    assert config["KAFKA_WEBHOOKS_GROUP"] == stt_settings.KafkaSettings().webhooks_group
    assert "STT_WEBHOOK_SECRET" in named("Secret", "stt-secrets")["stringData"]  # or no start
