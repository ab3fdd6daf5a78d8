"""The operator dashboard and its deployment: Grafana JSON, provisioning, Prometheus config, compose profile.

Every dashboard query is parsed as PromQL (promql-parser) and the metrics it selects are checked
against the metric table in docs/monitoring.md (always) and against a live server's ``/metrics``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import httpx
import promql_parser
import pytest
import yaml

from tests.audio_utils import ROOT

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "audio-service.json"
# Grafana's variables, replaced by values of the same kind so the query parses as plain PromQL
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$model": ".*", "${datasource}": "x"}
# series names a metric family exposes besides its own name
SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_total")


def _queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            # label_values(metric, label) is Grafana's, not PromQL: keep its metric selector
            exprs.append(re.fullmatch(r"label_values\((.+),\s*\w+\)", var["query"]["query"]).group(1))
    return exprs


def _selected_metrics(node) -> set[str]:
    """Names of the metrics a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name}
    out: set[str] = set()
    children = [getattr(node, a, None) for a in ("args", "expr", "param", "lhs", "rhs", "vector_selector")]
    for child in children:
        for c in child if isinstance(child, list) else [child]:
            if c is not None and not isinstance(c, (str, int, float)):
                out |= _selected_metrics(c)
    return out


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names: set[str] = set()
    for expr in _queries(dashboard):
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        names |= _selected_metrics(promql_parser.parse(expr))  # raises on a query that is not PromQL
    return names


def _documented_metrics() -> dict[str, str]:
    """metric -> type, from the table in docs/monitoring.md."""
    rows = re.findall(r"^\| (audio_service_\w+) \| (\w+) \|", (ROOT / "docs" / "monitoring.md").read_text(), re.M)
    return dict(rows)


def test_dashboard_is_valid_and_queries_documented_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "audio-service" and dashboard["panels"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    for p in panels:
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]  # the data source picker drives every panel
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
    # no two panels overlap on the 24-column grid
    cells = [
        (x, y)
        for p in dashboard["panels"]
        for g in [p["gridPos"]]
        for x in range(g["x"], g["x"] + g["w"])
        for y in range(g["y"], g["y"] + g["h"])
    ]
    assert len(cells) == len(set(cells))

    documented = _documented_metrics()
    used = _dashboard_metrics()
    for name in used:
        family = _family(name)
        assert name in documented or family in documented or f"{family}_total" in documented, name
        if name.endswith("_bucket"):
            assert documented[family] == "histogram", name
    # the panels: requests and errors, audio s/s, RTF, queue, streams, latency and lag, quotas
    for needed in (
        "requests_total",
        "errors_total",
        "audio_seconds_total",
        "realtime_factor_bucket",
        "queue_depth",
        "active_streams",
        "stream_partial_latency_seconds_bucket",
        "stream_final_latency_seconds_bucket",
        "stream_lag_seconds_bucket",
        "quota_rejections_total",
    ):
        assert f"audio_service_{needed}" in used, needed


def test_dashboard_metrics_are_exported_by_the_server(server):
    httpx.get(f"{server.base_url}/v1/models", timeout=30)  # some traffic, so request metrics have samples
    resp = httpx.get(f"{server.base_url}/metrics", timeout=30)
    if resp.status_code == 404:
        pytest.skip("this build serves no /metrics yet (it comes with the operations work)")
    assert resp.status_code == 200, resp.text
    exported: set[str] = set()
    for line in resp.text.splitlines():
        if line.startswith("# TYPE ") or line.startswith("# HELP "):
            exported.add(line.split()[2])
        elif line and not line.startswith("#"):
            exported.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    families = {_family(n) for n in exported}
    missing = sorted(n for n in _dashboard_metrics() if n not in exported and _family(n) not in families)
    assert not missing, f"dashboard queries metrics /metrics does not export: {missing}"


def test_provisioning_and_prometheus_config_fit_together():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/audio-service.yaml").read_text())["providers"][0]
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("./"))
    assert grafana_mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert grafana_mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"

    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    for target in scrape["static_configs"][0]["targets"]:
        host, port = target.split(":")
        assert host in services and port == "8000", target  # the compose services, on the port they listen on inside


def test_compose_monitoring_profile():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
        assert ":" in services[name]["image"] and not services[name]["image"].endswith(":latest"), "pin the image"
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
            else:
                assert source in compose["volumes"], source
    # the service itself is in no profile: `docker compose up audio-service-cpu` still starts it alone
    assert "profiles" not in services["audio-service"] and "profiles" not in services["audio-service-cpu"]


def _compose_command() -> list[str] | None:
    """The Compose CLI: the docker plugin where installed, else the standalone docker-compose."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.skipif(_compose_command() is None, reason="no Compose CLI installed (scripts/install.sh installs docker-compose)")
def test_compose_cli_accepts_the_file():
    # `config` only parses, validates and interpolates the file: no Docker engine is needed
    cmd = _compose_command() + ["--profile", "monitoring"]
    proc = subprocess.run([*cmd, "config", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    services = subprocess.run(
        [*cmd, "config", "--services"], cwd=ROOT, capture_output=True, text=True, timeout=120
    ).stdout.split()
    assert {"audio-service", "audio-service-cpu", "prometheus", "grafana"} <= set(services)
