"""deploy/prometheus and deploy/grafana against real tools: promtool checks the config and the alert
rules and runs their unit tests (each alert fires on its failure, stays quiet when healthy); a real
Prometheus (Debian's package) scrapes `python -m service` on the tiny fixtures, and every dashboard
query returns data while every alert expression evaluates (nothing firing on a healthy replica).
The Grafana provisioning must point at the dashboard folder and the datasource uid the panels use."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from live_service import REPO, free_port, live_service

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "latency.json"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (apt-get install prometheus)")
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None,
                                      reason="needs prometheus (apt-get install prometheus)")


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@needs_promtool
@pytest.mark.parametrize("command", [["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                                     ["test", "rules", "alerts_test.yml"]])
def test_promtool_accepts_config_rules_and_their_unit_tests(command: list[str]) -> None:
    result = subprocess.run(["promtool", *command], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_matches_the_dashboard_and_compose() -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {t["datasource"]["uid"] for p in panels for t in p.get("targets", [])}
    assert used <= uids
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "stickers.yml").read_text())
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["volumes"]}
    for provider in providers["providers"]:
        assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    home = compose["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{providers['providers'][0]['options']['path']}/{DASHBOARD.name}"


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, tiny_catalog: Path,
            cache_dir: Path) -> Iterator[tuple[str, str]]:
    """(service URL, Prometheus URL): Prometheus scraping the service every second, with traffic sent."""
    if shutil.which("prometheus") is None:
        pytest.skip("needs prometheus (apt-get install prometheus)")
    work = tmp_path_factory.mktemp("prometheus")
    with live_service(work / "index", tiny_checkpoint, tiny_catalog, cache_dir) as service:
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(PROMETHEUS_DIR / "alerts.yml")],
                  "scrape_configs": [{"job_name": "stickers",
                                      "static_configs": [{"targets": [service.removeprefix("http://")]}]}]}
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        process = subprocess.Popen(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        prometheus = f"http://127.0.0.1:{port}"
        try:
            for i in range(24):  # traffic over several scrapes, some of it repeated (cache hits)
                dialogue = [{"speaker": "A", "text": "hey"}, {"speaker": "B", "text": f"I am so happy today {i % 4}"}]
                assert httpx.post(f"{service}/recommend", json={"dialogue": dialogue}, timeout=30).status_code == 200
                time.sleep(0.25)
            time.sleep(3)
            yield service, prometheus
        finally:
            process.terminate()
            process.wait(timeout=30)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@needs_prometheus
def test_every_dashboard_query_returns_data(scraped: tuple[str, str]) -> None:
    _, prometheus = scraped
    assert [s["value"][1] for s in query(prometheus, 'up{job="stickers"}')] == ["1"]
    empty = [expr for expr in dashboard_queries() if not query(prometheus, expr.replace("$__rate_interval", "30s"))]
    assert not empty, f"dashboard queries without data: {empty}"


@needs_prometheus
def test_alert_expressions_name_real_metrics_and_stay_quiet_on_a_healthy_replica(scraped: tuple[str, str]) -> None:
    from service.metrics import ServiceMetrics

    _, prometheus = scraped
    suffix = {"counter": "_total", "info": "_info"}  # as exposed; histograms add _bucket/_sum/_count
    declared = {m.name + suffix.get(m.type, "") for m in ServiceMetrics().registry.collect()}
    for rule in alert_rules():
        named = set(re.findall(r"\bstickers_\w+", rule["expr"])) - {"stickers"}
        names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in named}
        assert names <= declared, (rule["alert"], names - declared)
        if rule["alert"] != "StickersSlowP99":  # the tiny model on a shared CPU may well be slow
            assert query(prometheus, rule["expr"]) == [], rule["alert"]
    deadline = time.monotonic() + 20
    while True:  # Prometheus loaded the file and evaluated every rule without error
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if len(rules) == len(alert_rules()) and all(r.get("health") == "ok" for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
