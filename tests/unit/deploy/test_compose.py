"""The production compose stack (docker-compose.yml, Dockerfile) is valid and in step with the code.

No Docker needed: the compose file is read with `yaml.safe_load` and

* validated against the official Compose Specification JSON Schema, kept offline in
  `tests/data/compose-spec.json`. That file is `schema/compose-spec.json` of the
  compose-spec/compose-spec repository at commit 00655e2222608fa6eaecdf12ac5195889ca2244a
  (the 2025 schema, with top-level `models`, `provider`, `use_api_socket`, ...), copied
  verbatim (74,133 characters). It declares JSON Schema draft-07, so `Draft7Validator` is used.
  To refresh it, replace the file with a newer `schema/compose-spec.json` from that repository
  and run this module: the deliberately broken copies below must still be rejected;
* checked against `streams.settings.Settings` (every JOURNEY_* variable is a real setting and
  parses), the Kafka and Redis services (bootstrap = the broker's advertised listener, Redis URL =
  the redis service, health checks, AOF persistence, start order), the Dockerfile (its CMD) and
  pyproject.toml (the `journey` console script and its `worker` / `topics` commands);
* the worker's HTTP endpoint: it listens on every interface of its container with the port published
  on the host's loopback, and its health check asks the app's real `/readyz` on that port with a
  python one-liner (run here against a real endpoint: it passes on 200, fails on 503); the
  Dockerfile sets `JOURNEY_HTTP_HOST=0.0.0.0` and exposes the port.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml
from packaging.specifiers import SpecifierSet

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA_FILE = ROOT / "tests" / "data" / "compose-spec.json"

APP_SERVICES = ("topics", "worker")


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE_FILE.open() as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture(scope="module")
def validator(schema):
    # The Compose schema declares draft-07 ("https://json-schema.org/draft-07/schema", a spelling
    # jsonschema.validators.validator_for does not map), so pick the matching class explicitly.
    assert re.search(r"json-schema\.org/draft-07/schema#?$", schema["$schema"]), schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def service(compose: dict, name: str) -> dict:
    assert name in compose["services"], f"docker-compose.yml has no `{name}` service"
    return compose["services"][name]


def environment(svc: dict) -> dict[str, str]:
    """A service's environment as a dict of strings, whichever of the two forms the file uses."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: None if v is None else str(v) for k, v in env.items()}


def argv(command) -> list[str]:
    """A compose `command` / healthcheck `test` / Dockerfile CMD as an argument list."""
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def journey_env(compose: dict, name: str) -> dict[str, str]:
    return {k: v for k, v in environment(service(compose, name)).items() if k.startswith("JOURNEY_")}


def depends_on(svc: dict) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):  # the short form means condition: service_started
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_cmd() -> list[str]:
    cmds = [rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    cmd = cmds[-1]  # the last CMD is the one that counts
    assert cmd.startswith("["), f"use the exec (JSON) form for CMD so signals reach the worker: {cmd}"
    return json.loads(cmd)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def kafka_env(compose: dict) -> dict[str, str]:
    return environment(service(compose, "kafka"))


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """'PLAINTEXT://kafka:9092,EXTERNAL://localhost:9094' -> {'PLAINTEXT': ('kafka', 9092), ...}"""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


# ------------------------------------------------- the Compose Specification


def test_schema_is_the_compose_specification(schema):
    assert schema["title"] == "Compose Specification"
    assert {"services", "volumes", "networks"} <= set(schema["properties"])


def test_compose_file_is_valid_against_the_compose_specification(compose, validator):
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def _broken_copies(compose: dict):
    bad_condition = copy.deepcopy(compose)
    bad_condition["services"]["worker"]["depends_on"]["kafka"] = {"condition": "bogus"}
    yield "depends_on condition 'bogus'", bad_condition

    unknown_top_level = copy.deepcopy(compose)
    unknown_top_level["servicez"] = unknown_top_level.pop("services")
    yield "unknown top-level key", unknown_top_level

    unknown_service_key = copy.deepcopy(compose)
    unknown_service_key["services"]["redis"]["restrat"] = "always"
    yield "unknown service key", unknown_service_key

    bad_healthcheck = copy.deepcopy(compose)
    bad_healthcheck["services"]["redis"]["healthcheck"]["interval"] = 5
    yield "healthcheck interval not a duration string", bad_healthcheck

    bad_command = copy.deepcopy(compose)
    bad_command["services"]["worker"]["command"] = {"run": "journey worker"}
    yield "command as a mapping", bad_command


def test_validator_rejects_broken_compose_files(compose, validator):
    """The schema check is not vacuous: it catches the mistakes it is there for."""
    for what, broken in _broken_copies(compose):
        assert not validator.is_valid(broken), f"a compose file with {what} was accepted"


# ---------------------------------------------------- in step with the code


def test_topics_and_worker_share_the_same_environment(compose):
    envs = {name: environment(service(compose, name)) for name in APP_SERVICES}
    assert envs["topics"] == envs["worker"], "topics and worker must see the same JOURNEY_* settings"
    assert envs["worker"], "the worker has no environment"


def test_every_journey_variable_is_a_setting_and_parses(compose, monkeypatch):
    prefix = Settings.model_config["env_prefix"]
    fields = set(Settings.model_fields)
    env = journey_env(compose, "worker")
    unknown = sorted(k for k in env if k.removeprefix(prefix).lower() not in fields)
    assert not unknown, f"not settings of streams.settings.Settings: {unknown}"
    assert all(k == k.upper() for k in env), "setting variables are upper case"

    # Read them exactly as the worker does: from the environment, nothing else set.
    for key in [k for k in os.environ if k.startswith(prefix)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    for key, value in env.items():
        parsed = getattr(settings, key.removeprefix(prefix).lower())
        assert str(parsed) == value or parsed == type(parsed)(value), (key, value, parsed)


def _settings_from(compose: dict) -> Settings:
    env = journey_env(compose, "worker")
    return Settings(**{k.removeprefix("JOURNEY_").lower(): v for k, v in env.items()})


def test_production_uses_the_wall_clock(compose):
    assert _settings_from(compose).clock == "wall"


def test_topic_names_are_the_documented_ones(compose):
    env = journey_env(compose, "worker")
    defaults = {name: field.default for name, field in Settings.model_fields.items() if name.startswith("topic_")}
    for name, default in defaults.items():
        key = f"JOURNEY_{name.upper()}"
        if key in env:
            assert env[key] == default, f"{key}={env[key]!r}, but the code and the README use {default!r}"
    settings = _settings_from(compose)
    names = [settings.topic_touchpoints, *settings.output_topics]
    assert len(set(names)) == len(names), f"topics must be distinct: {names}"


def test_kafka_bootstrap_is_the_brokers_advertised_listener(compose):
    env = kafka_env(compose)
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    bound = listeners(env["KAFKA_LISTENERS"])
    controller_names = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))

    settings = _settings_from(compose)
    for address in settings.kafka_bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        matching = [name for name, hp in advertised.items() if hp == (host, int(port))]
        assert matching, f"{address} is not an advertised listener of kafka: {advertised}"
        name = matching[0]
        assert name not in controller_names, f"{address} is the controller listener"
        assert bound[name][1] == int(port), f"listener {name} binds port {bound[name][1]}, not {port}"
        assert host in compose["services"], f"{host} is not a service of the stack"
        assert host == "kafka"


def test_kafka_is_a_single_kraft_node_without_topic_auto_creation(compose):
    kafka = service(compose, "kafka")
    env = kafka_env(compose)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1 and voters[0].startswith(f"{node_id}@kafka:")
    controller_port = int(voters[0].rpartition(":")[2])
    assert listeners(env["KAFKA_LISTENERS"])[env["KAFKA_CONTROLLER_LISTENER_NAMES"]][1] == controller_port
    # `topics` creates them; nothing else may.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # One broker: internal topics and ours cannot have more than one replica.
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert _settings_from(compose).replication_factor == 1
    # The data lives in the named volume, not in the container.
    log_dir = env["KAFKA_LOG_DIRS"]
    assert any(
        str(v).split(":")[1:2] == [log_dir] and str(v).split(":")[0] in (compose.get("volumes") or {})
        for v in kafka.get("volumes", [])
    ), f"{log_dir} is not on a named volume"


def test_redis_url_is_the_redis_service(compose):
    url = urlparse(_settings_from(compose).redis_dsn)
    assert url.scheme == "redis"
    assert url.hostname == "redis" and url.hostname in compose["services"]
    redis_argv = argv(service(compose, "redis")["command"])
    port = int(redis_argv[redis_argv.index("--port") + 1]) if "--port" in redis_argv else 6379
    assert (url.port or 6379) == port


def test_redis_persists_with_aof_on_a_named_volume(compose):
    redis = service(compose, "redis")
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1].startswith("7")
    args = argv(redis["command"])
    assert args[0] == "redis-server"
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] in ("everysec", "always")
    mounts = [str(v).split(":") for v in redis.get("volumes", [])]
    assert any(m[1] == "/data" and m[0] in (compose.get("volumes") or {}) for m in mounts)


@pytest.mark.parametrize("name", ["kafka", "redis"])
def test_infrastructure_has_a_health_check(compose, name):
    check = service(compose, name).get("healthcheck")
    assert check and not check.get("disable"), f"{name} has no health check"
    test = argv(check["test"])
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    expected = {"kafka": "kafka-broker-api-versions.sh", "redis": "redis-cli"}[name]
    assert expected in " ".join(test)


def test_start_order(compose):
    worker, topics = service(compose, "worker"), service(compose, "topics")
    assert depends_on(worker) == {
        "kafka": "service_healthy",
        "redis": "service_healthy",
        "topics": "service_completed_successfully",
    }
    assert depends_on(topics).get("kafka") == "service_healthy"
    assert str(topics.get("restart", "no")) == "no", "the topics step runs once"
    assert worker.get("restart") in ("unless-stopped", "always", "on-failure")


def test_app_services_are_built_from_the_dockerfile(compose):
    for name in APP_SERVICES:
        build = service(compose, name).get("build")
        assert build is not None, f"{name} is not built from the repository"
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (COMPOSE_FILE.parent / context / dockerfile).resolve() == DOCKERFILE


def test_commands_are_the_journey_console_script():
    scripts = pyproject()["project"]["scripts"]
    assert scripts.get("journey") == "streams.cli:main"

    module, _, attr = scripts["journey"].partition(":")
    cli = getattr(importlib.import_module(module), attr)
    assert {"worker", "topics"} <= set(cli.commands)


def test_worker_and_topics_run_journey_commands(compose):
    assert dockerfile_cmd() == ["journey", "worker"]
    assert argv(service(compose, "worker")["command"]) == ["journey", "worker"]
    assert argv(service(compose, "topics")["command"]) == ["journey", "topics"]


def test_dockerfile_builds_the_package_as_non_root():
    instructions = dockerfile_instructions()
    base = [rest for keyword, rest in instructions if keyword == "FROM"][-1].split()[0]
    assert re.fullmatch(r"python:3\.\d+(\.\d+)?-slim(-\w+)?", base), base
    assert base.split(":")[1].split("-")[0] in SpecifierSet(pyproject()["project"]["requires-python"])

    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip install (\S+ )*\.(\s|$)", runs), "the image installs the package with `pip install .`"
    assert "[local]" not in runs and "[test]" not in runs, "the image needs neither the local stack nor the tests"

    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the worker must not run as root"

    copied = {Path(rest.split()[0]).parts[0] for keyword, rest in instructions if keyword == "COPY"}
    packages = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:  # every package the wheel includes is in the build context
        assert pattern.rstrip("*") in copied, f"{pattern} is not copied into the image"


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".venv", ".git", ".journey-local", ".pytest_cache"):
        assert entry in ignored, f"{entry} is not in .dockerignore"
    assert any("__pycache__" in line for line in ignored)


# ------------------------------------------------------- the HTTP endpoint and its health check


def _app_paths() -> set[str]:
    from streams.http.app import HttpConfig, Routes

    return {path for _, path, _ in Routes(None, HttpConfig()).table()}  # type: ignore[arg-type]


def _worker_check(compose: dict) -> list[str]:
    check = service(compose, "worker").get("healthcheck")
    assert check and not check.get("disable"), "the worker has no health check"
    return argv(check["test"])


def test_the_worker_listens_on_every_interface_and_publishes_its_port(compose):
    settings = _settings_from(compose)
    assert settings.http_host == "0.0.0.0", "inside a container, loopback is unreachable from the host"
    assert settings.http_port != 0
    published = [str(p) for p in service(compose, "worker").get("ports", [])]
    assert any(p.rsplit(":", 1)[-1] == str(settings.http_port) for p in published), published
    assert all(p.startswith("127.0.0.1:") for p in published), "publish on the host's loopback only"


def test_the_worker_health_check_asks_readyz_with_python(compose):
    test = _worker_check(compose)
    assert test[:3] == ["CMD", "python", "-c"], "the image has python but no curl"
    [url] = re.findall(r"http://[^'\"]+", test[3])
    parsed = urlparse(url)
    settings = _settings_from(compose)
    assert parsed.path == "/readyz" and parsed.path in _app_paths()
    assert parsed.hostname == "127.0.0.1" and parsed.port == settings.http_port


def test_the_worker_health_check_passes_on_200_and_fails_on_503(compose):
    """The check's own command, run against a real endpoint on a free port: exit 0 when ready, 1 when not."""
    import asyncio
    import socket
    import subprocess
    import sys

    from streams.http.app import HttpConfig, serve
    from streams.http.metrics import Telemetry

    class Engine:
        telemetry = Telemetry(dict)
        ready: str | None = None

        def liveness(self):
            return None

        async def readiness(self):
            return self.ready

        async def refresh(self):
            return None

        async def profile(self, customer_id):
            return None

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = _worker_check(compose)[3].replace(f":{_settings_from(compose).http_port}/", f":{port}/")

    async def run_check(engine: Engine) -> int:
        runner = await serve(engine, HttpConfig(port=port))
        assert runner is not None
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
            )
            return await asyncio.wait_for(proc.wait(), 30)
        finally:
            await runner.cleanup()

    engine = Engine()
    assert asyncio.run(run_check(engine)) == 0
    engine.ready = "joining consumer group"
    assert asyncio.run(run_check(engine)) != 0


def test_the_dockerfile_listens_on_every_interface_and_exposes_the_port():
    instructions = dockerfile_instructions()
    env_lines = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    env = dict(re.findall(r"(JOURNEY_[A-Z_]+)=(\S+)", env_lines))
    fields = set(Settings.model_fields)
    assert all(k.removeprefix("JOURNEY_").lower() in fields for k in env), env
    assert env.get("JOURNEY_HTTP_HOST") == "0.0.0.0"
    port = int(env.get("JOURNEY_HTTP_PORT", Settings.model_fields["http_port"].default))
    exposed = [rest for keyword, rest in instructions if keyword == "EXPOSE"]
    assert exposed and str(port) in " ".join(exposed).split()


def test_the_worker_is_given_longer_to_stop_than_it_can_take(compose):
    """As the pod's grace (test_kubernetes.py): past `stop_grace_period` compose kills the worker."""
    from streams.live import stopping

    grace = service(compose, "worker")["stop_grace_period"]
    assert re.fullmatch(r"\d+s", grace), grace
    assert int(grace[:-1]) > stopping.BATCH_GRACE_S + 3 * stopping.CLIENT_TIMEOUT_S
