"""The Kubernetes example (deploy/kubernetes/) is valid and in step with the code.

* Every manifest validates, strictly (unknown fields refused), against the Kubernetes OpenAPI schemas
  bundled in the pinned `kubernetes-validate` package (no network); broken copies are rejected.
* Every JOURNEY_* variable the Deployment sets is a setting and parses; the secrets come from the
  Secret, by keys it holds; the probes point at the app's real routes on the port it listens on;
  the ConfigMap's rules and playbook are the shipped ones, mounted where JOURNEY_RULES_FILE and
  JOURNEY_PLAYBOOK_FILE point; the Service selects the Deployment's pods on the same port.
* The Prometheus example (deploy/prometheus.yml) scrapes the real metrics path on that port.
"""

from __future__ import annotations

import copy
import os
import posixpath
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from streams.core.model import load_model
from streams.core.playbook.playbook import DEFAULT_PLAYBOOK_FILE
from streams.core.rules.compiled import DEFAULT_RULES
from streams.http.app import HttpConfig, Routes
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "kubernetes"
#: The Kubernetes version whose schemas the manifests are checked against (bundled by the pinned package).
KUBERNETES_VERSION = "1.37.0"
SECRET_SETTINGS = {"JOURNEY_REDIS_URL", "JOURNEY_HTTP_TOKEN", "JOURNEY_HOLDOUT_SALT"}


def _manifests() -> dict[str, dict]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[doc["kind"]] = doc
    return out


MANIFESTS = _manifests()


def _app_paths() -> set[str]:
    return {path for _, path, _ in Routes(None, HttpConfig()).table()}  # type: ignore[arg-type]


@pytest.fixture
def deployment() -> dict:
    return copy.deepcopy(MANIFESTS["Deployment"])


def container(deployment: dict) -> dict:
    [worker] = deployment["spec"]["template"]["spec"]["containers"]
    return worker


def env_values(deployment: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container(deployment)["env"]}


def port_of(deployment: dict, port: int | str) -> int:
    """A container port, by number or by name."""
    ports = {p.get("name"): p["containerPort"] for p in container(deployment)["ports"]}
    return ports[port] if isinstance(port, str) else port


# ------------------------------------------------------------------------ the Kubernetes schemas


def test_the_example_has_the_expected_manifests():
    assert set(MANIFESTS) == {"ConfigMap", "Secret", "Deployment", "Service"}


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(kind):
    assert kubernetes_validate.validate(MANIFESTS[kind], KUBERNETES_VERSION, strict=True)


def _broken(deployment: dict):
    worker = container(deployment)
    typo = copy.deepcopy(deployment)
    container(typo)["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    yield "a misspelled field", typo
    port = copy.deepcopy(deployment)
    container(port)["ports"][0]["containerPort"] = str(worker["ports"][0]["containerPort"])
    yield "a port as a string", port
    unnamed = copy.deepcopy(deployment)
    container(unnamed).pop("name")
    yield "a container without a name", unnamed
    env = copy.deepcopy(deployment)
    container(env)["env"][0]["value"] = 8080
    yield "an env value that is not a string", env


def test_the_validation_is_not_vacuous(deployment):
    for what, broken in _broken(deployment):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
            pytest.fail(f"a Deployment with {what} was accepted")


# ------------------------------------------------------------------------ in step with the code


def _settings_of(deployment: dict, monkeypatch) -> Settings:
    """The worker's settings, read from the environment as the worker reads them (secrets filled in)."""
    for key in [k for k in os.environ if k.startswith("JOURNEY_")]:
        monkeypatch.delenv(key)
    secret = MANIFESTS["Secret"]["stringData"]
    for name, item in env_values(deployment).items():
        if "value" in item:
            monkeypatch.setenv(name, item["value"])
        else:
            monkeypatch.setenv(name, secret[item["valueFrom"]["secretKeyRef"]["key"]])
    return Settings()


def test_every_journey_variable_is_a_setting_and_parses(deployment, monkeypatch):
    fields = set(Settings.model_fields)
    env = env_values(deployment)
    unknown = sorted(k for k in env if not k.startswith("JOURNEY_") or k.removeprefix("JOURNEY_").lower() not in fields)
    assert not unknown, f"not settings of streams.settings.Settings: {unknown}"
    settings = _settings_of(deployment, monkeypatch)
    for name, item in env.items():
        if "value" in item:
            parsed = getattr(settings, name.removeprefix("JOURNEY_").lower())
            assert str(parsed) == item["value"] or parsed == type(parsed)(item["value"]), (name, item, parsed)
    assert settings.http_host == "0.0.0.0" and settings.http_token is not None
    assert settings.log_format == "json" and settings.clock == "wall"


def test_secrets_come_from_the_secret(deployment):
    env = env_values(deployment)
    secret = MANIFESTS["Secret"]
    for name in SECRET_SETTINGS:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[name], f"{name} is a secret: take it from the Secret, not the manifest"
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]
    assert all("valueFrom" not in item for name, item in env.items() if name not in SECRET_SETTINGS)


def test_probes_point_at_the_real_routes_on_the_real_port(deployment, monkeypatch):
    worker = container(deployment)
    settings = _settings_of(deployment, monkeypatch)
    probes = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in probes.items():
        get = worker[probe]["httpGet"]
        assert get["path"] == path and path in _app_paths()
        assert port_of(deployment, get["port"]) == settings.http_port
    # liveness must not give up before /healthz itself calls the worker stalled
    liveness = worker["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30
    assert worker["args"] == ["journey", "worker"]


def test_the_rules_and_playbook_are_mounted_where_the_settings_point(deployment, monkeypatch, tmp_path):
    settings = _settings_of(deployment, monkeypatch)
    worker, pod = container(deployment), deployment["spec"]["template"]["spec"]
    configmap = MANIFESTS["ConfigMap"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = {}
    for mount in worker["volumeMounts"]:
        source = volumes[mount["name"]]["configMap"]
        assert source["name"] == configmap["metadata"]["name"]
        for item in source.get("items") or [{"key": k, "path": k} for k in configmap["data"]]:
            files[posixpath.join(mount["mountPath"], item["path"])] = configmap["data"][item["key"]]
    assert str(settings.rules_file) in files and str(settings.playbook_file) in files
    rules, playbook = files[str(settings.rules_file)], files[str(settings.playbook_file)]
    assert rules == DEFAULT_RULES.read_text(), "configmap.yaml's rules differ from the shipped ones: copy them in"
    assert playbook == DEFAULT_PLAYBOOK_FILE.read_text(), "configmap.yaml's playbook differs from the shipped one"
    (tmp_path / "rules.yaml").write_text(rules)
    (tmp_path / "playbook.yaml").write_text(playbook)
    load_model(tmp_path / "rules.yaml", tmp_path / "playbook.yaml")  # they validate together


def test_the_service_selects_the_workers_on_their_port(deployment, monkeypatch):
    service = MANIFESTS["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    settings = _settings_of(deployment, monkeypatch)
    assert port_of(deployment, port["targetPort"]) == settings.http_port
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics" and "/metrics" in _app_paths()
    assert int(annotations["prometheus.io/port"]) == settings.http_port


def test_the_prometheus_example_scrapes_the_metrics_route():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs, "no scrape job"
    port = Settings.model_fields["http_port"].default
    for job in jobs.values():
        assert job["metrics_path"] == "/metrics" and "/metrics" in _app_paths()
    [static] = jobs["journey-worker"]["static_configs"]
    assert all(target.endswith(f":{port}") for target in static["targets"])
    keep = jobs["journey-worker-kubernetes"]["relabel_configs"][0]
    service = MANIFESTS["Service"]
    assert keep["regex"] == f"{service['metadata']['name']};{service['spec']['ports'][0]['name']}"


def test_the_pod_is_given_longer_to_stop_than_the_worker_can_take(deployment):
    """A worker stops within the grace for its batch in flight plus an offset commit and two Kafka clients'
    stops, whatever Kafka and Redis do (`streams/live/stopping.py`); past the pod's grace it is killed."""
    from streams.live import stopping

    longest = stopping.BATCH_GRACE_S + 3 * stopping.CLIENT_TIMEOUT_S
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > longest
