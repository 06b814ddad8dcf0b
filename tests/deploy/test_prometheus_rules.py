"""deploy/prometheus/alerts.yml: valid for the real `promtool`, every rule documented, and every
rule proven by promtool's own unit tests (alerts.test.yml) to fire on its series and stay quiet
otherwise. promtool comes with Debian's `prometheus` package (Makefile DEBIAN_PACKAGES)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
README = ROOT / "README.md"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (make install)")
    return found


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_is_documented_and_has_a_firing_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    readme = README.read_text()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["annotations"].get("summary"), f"{name} has no summary"
        assert len(rule["annotations"].get("description", "")) > 80, f"{name}: what to do?"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert name in fired, f"{name}: no unit test where it fires"
        assert name in quiet, f"{name}: no unit test where it stays quiet"
        assert f"`{name}`" in readme, f"{name} is not explained in README's Operating stt"


# ---- the k8s base's scrape config (deploy/k8s/base/prometheus-config.yaml) ----
K8S_CONFIG = ROOT / "deploy" / "k8s" / "base" / "prometheus-config.yaml"


def k8s_config() -> dict[str, str]:
    data: dict[str, str] = yaml.safe_load(K8S_CONFIG.read_text())["data"]
    return data


def test_k8s_configmap_carries_the_same_rules() -> None:
    assert k8s_config()["alerts.yml"] == RULES.read_text()


def test_k8s_scrape_config_is_valid_for_promtool(tmp_path: Path) -> None:
    data = k8s_config()
    (tmp_path / "alerts.yml").write_text(data["alerts.yml"])
    config = yaml.safe_load(data["prometheus.yml"])
    config["rule_files"] = [str(tmp_path / "alerts.yml")]  # where the ConfigMap is mounted
    # Debian builds Prometheus without Kubernetes discovery, so its promtool rejects the block:
    # check it by hand, and everything else (relabel rules included) with promtool.
    (job,) = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod", "namespaces": {"names": ["stt"]}}]
    job["static_configs"] = [{"targets": ["10.0.0.1:9100"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_k8s_job_label_is_what_the_rules_expect_for_every_scraped_deployment() -> None:
    import re

    config = yaml.safe_load(k8s_config()["prometheus.yml"])
    (relabel,) = [
        r for r in config["scrape_configs"][0]["relabel_configs"] if r.get("target_label") == "job"
    ]
    pattern = re.compile(f"^(?:{relabel['regex']})$")  # Prometheus anchors relabel regexes
    deployments = [
        doc
        for path in sorted((ROOT / "deploy" / "k8s").rglob("*deployment.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "Deployment"
    ]
    jobs = set()
    for doc in deployments:
        template = doc["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true", doc["metadata"]["name"]
        name = template["metadata"]["labels"]["app.kubernetes.io/name"]
        found = pattern.match(name)
        assert found, f"{name}: no job label"
        jobs.add(found.expand(relabel["replacement"].replace("$1", r"\1")))
        ports = {
            str(p["containerPort"]) for c in template["spec"]["containers"] for p in c["ports"]
        }
        assert annotations["prometheus.io/port"] in ports, name
    assert jobs == {"stt-api", "stt-projector", "stt-transcriber", "stt-webhooks"}
