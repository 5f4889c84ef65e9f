"""Static checks of the deployment files (Dockerfile, docker-compose.yml).

Nothing here needs docker: the files are parsed and checked against the code they
drive (the Settings fields, the CLI's subcommands).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

# The `descent` subcommands. Must match the commands defined in service/cli/server.py.
CLI_COMMANDS = frozenset({"up", "api", "worker", "migrate", "db-check"})

ENV_PREFIX = "DESCENT_"

#: The services of the `monitoring` profile (examples/monitoring/).
MONITORING = ("prometheus", "grafana")
MONITORING_DIR = ROOT / "examples" / "monitoring"

#: What a user puts in .env: passwords that production accepts.
STRONG_PASSWORDS = {"POSTGRES_PASSWORD": "pg-7f3a-test-only", "REDIS_PASSWORD": "rd-91c2-test-only"}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and data.get("services"), "compose file has no services"
    return data


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def stages() -> dict[str, list[str]]:
    return dockerfile_stages(DOCKERFILE.read_text())


def env_of(service: dict) -> dict[str, str]:
    """A service's environment as a dict; handles the mapping and the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    assert isinstance(env, dict), f"unexpected environment: {env!r}"
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
VARIABLE_RE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(Exception):
    """What `docker compose` refuses to start with: a required variable left unset."""


def interpolate(value: object, env: dict[str, str]) -> object:
    """``value`` with compose's variable substitution applied, from ``env`` alone."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if name is None:
            return "$"
        got = env.get(name)
        unset = got is None or (op is not None and op.startswith(":") and got == "")
        if op in (":?", "?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and unset:
            return arg
        return got or ""

    return VARIABLE_RE.sub(substitute, value)


def settings_of(service: dict, env: dict[str, str]) -> Settings:
    """The Settings a Descent container would build from its compose environment."""
    values = env_of(interpolate(service, env))  # type: ignore[arg-type]
    return Settings(
        **{k[len(ENV_PREFIX) :].lower(): v for k, v in values.items() if k.startswith(ENV_PREFIX)}
    )


def depends_on_of(service: dict) -> dict[str, dict]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: started, no condition
        return {name: {} for name in deps}
    return {name: spec or {} for name, spec in deps.items()}


def healthcheck_test(service: dict) -> list[str] | str | None:
    hc = service.get("healthcheck") or {}
    if hc.get("disable"):
        return None
    return hc.get("test")


def logical_lines(text: str) -> list[str]:
    """Dockerfile instructions: comments dropped, backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):  # comment inside a continuation
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


FROM_RE = re.compile(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)


def dockerfile_stages(text: str) -> dict[str, list[str]]:
    """Stage name -> its instructions, from its FROM line up to the next FROM."""
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for index, line in enumerate(logical_lines(text)):
        match = FROM_RE.match(line)
        if match:
            name = (match.group(2) or f"<stage {index}>").lower()
            current = result.setdefault(name, [])
        if current is not None:
            current.append(line)
    return result


def stage_chain(stages: dict[str, list[str]], name: str) -> list[str]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [name]
    while True:
        match = FROM_RE.match(stages[chain[-1]][0])
        assert match
        parent = match.group(1).lower()
        if parent not in stages or parent in chain:
            return chain
        chain.append(parent)


# `descent` in command position of a shell string: at the start, or after ; & | ( or
# `exec`, optionally as a path (/usr/local/bin/descent).
SHELL_DESCENT_RE = re.compile(r"(?:^|[;&|(])\s*(?:exec\s+)?(?:\S*/)?descent\s+([^\s;&|)]+)")


def descent_subcommands(command: str | list[str]) -> list[str]:
    """Every `descent <subcommand>` in a command (exec list or shell string)."""
    if isinstance(command, str):
        return SHELL_DESCENT_RE.findall(command.strip())
    words = [str(w) for w in command]
    if words and words[0].rsplit("/", 1)[-1] == "descent":
        return words[1:2]
    # e.g. ["sh", "-c", "descent migrate && ..."]
    return [sub for word in words if " " in word for sub in SHELL_DESCENT_RE.findall(word)]


def compose_commands(services: dict) -> list[tuple[str, str | list[str]]]:
    found: list[tuple[str, str | list[str]]] = []
    for name, svc in services.items():
        for key in ("command", "entrypoint"):
            if svc.get(key):
                found.append((f"{name}.{key}", svc[key]))
        test = healthcheck_test(svc)
        if isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL"):
            found.append((f"{name}.healthcheck", test[1:] if test[0] == "CMD" else test[1]))
        elif isinstance(test, str):
            found.append((f"{name}.healthcheck", test))
    return found


def dockerfile_commands(stages: dict[str, list[str]]) -> list[tuple[str, str | list[str]]]:
    found: list[tuple[str, str | list[str]]] = []
    for stage, lines in stages.items():
        for line in lines:
            keyword, _, rest = line.partition(" ")
            keyword = keyword.upper()
            if keyword == "HEALTHCHECK":
                rest = re.sub(r"^(?:--\S+\s+)*CMD\s+", "", rest.strip())
            elif keyword not in ("CMD", "ENTRYPOINT"):
                continue
            rest = rest.strip()
            if rest.startswith("["):
                found.append((f"{stage}: {keyword}", yaml.safe_load(rest)))
            else:
                found.append((f"{stage}: {keyword}", rest))
    return found


def mentions_torch(lines: list[str]) -> bool:
    return any(re.search(r"torch", line, re.IGNORECASE) for line in lines)


# --------------------------------------------------------------------------- compose


def test_compose_has_the_expected_services(services: dict) -> None:
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)


def test_every_service_has_a_healthcheck(services: dict) -> None:
    missing = []
    for name, svc in services.items():
        test = healthcheck_test(svc)
        if isinstance(test, list):
            ok = len(test) >= 2 and test[0] in ("CMD", "CMD-SHELL") and all(test[1:])
        else:
            ok = isinstance(test, str) and bool(test.strip())
        if not ok:
            missing.append(name)
    assert not missing, f"services without a usable healthcheck: {missing}"


def test_descent_env_vars_are_settings_fields(services: dict, stages: dict) -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    used: dict[str, str] = {}
    for name, svc in services.items():
        for key in env_of(svc):
            if key.startswith(ENV_PREFIX):
                used[key] = f"compose service {name}"
    for stage, lines in stages.items():
        for line in lines:
            keyword, _, rest = line.partition(" ")
            if keyword.upper() in ("ENV", "ARG"):
                for key in re.findall(r"\b(DESCENT_\w+)", rest):
                    used[key] = f"Dockerfile stage {stage}"
    assert used, "no DESCENT_* variables found; the env anchor did not resolve?"
    unknown = {key: where for key, where in used.items() if key not in fields}
    assert not unknown, f"DESCENT_* variables that are not Settings fields: {unknown}"


def test_descent_containers_share_the_production_env(services: dict) -> None:
    for name in ("migrate", "api", "worker"):
        env = env_of(services[name])
        assert env.get("DESCENT_ENVIRONMENT") == "production", name
        assert env.get("DESCENT_DATABASE_URL", "").startswith("postgresql+psycopg://"), name
        assert env.get("DESCENT_BROKER_URL", "").startswith("redis://"), name
        assert env.get("DESCENT_ARTIFACTS_DIR") == "/data/artifacts", name
        # Production must validate: the URLs are real servers, not the SQLite defaults,
        # once .env holds real passwords.
        settings = settings_of(services[name], STRONG_PASSWORDS)
        assert not str(settings.database_url).startswith("sqlite"), name
        assert STRONG_PASSWORDS["POSTGRES_PASSWORD"] in str(settings.database_url), name
        assert STRONG_PASSWORDS["REDIS_PASSWORD"] in str(settings.broker_url), name


def test_passwords_have_no_defaults(compose: dict) -> None:
    """Every password comes from the environment, and compose refuses to start without it."""
    text = COMPOSE_FILE.read_text()
    uses = re.findall(r"\$\{(\w*PASSWORD\w*)([^}]*)\}", text)
    assert {name for name, _ in uses} == set(STRONG_PASSWORDS), uses
    for name, rest in uses:
        assert rest.startswith(":?"), f"${{{name}{rest}}} must be ${{{name}:?...}} (no default)"
    assert not re.search(r"(?i)password\w*[:=]\s*['\"]?(descent|secret|postgres)\b", text)
    for variable in STRONG_PASSWORDS:
        env = {k: v for k, v in STRONG_PASSWORDS.items() if k != variable}
        for empty in ({}, {variable: ""}):
            with pytest.raises(MissingVariable, match=variable):
                interpolate(compose, {**env, **empty})
    interpolate(compose, STRONG_PASSWORDS)  # and with both set, it starts


@pytest.mark.parametrize(
    ("variable", "url_variable"),
    [("POSTGRES_PASSWORD", "DESCENT_DATABASE_URL"), ("REDIS_PASSWORD", "DESCENT_BROKER_URL")],
)
@pytest.mark.parametrize("weak", ["descent", "changeme", "postgres", "secret"])
def test_services_refuse_default_passwords(
    services: dict, variable: str, url_variable: str, weak: str
) -> None:
    env = {**STRONG_PASSWORDS, variable: weak}
    for name in ("migrate", "api", "worker"):
        with pytest.raises(ValueError, match=url_variable) as info:
            settings_of(services[name], env)
        assert weak not in str(info.value).split("nor one of")[0], "the password leaked"


def host_ip(port: object) -> str | None:
    """The host address a compose ports entry binds (None: every interface)."""
    if isinstance(port, dict):  # long syntax
        return port.get("host_ip")
    parts = str(port).rsplit(":", 2)
    return parts[0].strip("[]") if len(parts) == 3 else None


def test_only_the_api_publishes_a_port_and_only_on_loopback(services: dict) -> None:
    for name in ("postgres", "redis", "worker"):
        assert not services[name].get("ports"), f"{name} must not publish a port"
    published = {name: svc.get("ports") or [] for name, svc in services.items()}
    # The monitoring profile's Prometheus and Grafana publish theirs, on loopback too.
    assert [name for name, ports in published.items() if ports] == [
        "api",
        *MONITORING,
    ], published
    for name in ("api", *MONITORING):
        for port in published[name]:
            assert host_ip(port) in ("127.0.0.1", "::1"), f"{name} publishes {port!r} widely"


@pytest.mark.parametrize(
    ("port", "ip"),
    [
        ("127.0.0.1:8000:8000", "127.0.0.1"),
        ("8000:8000", None),
        ("8000", None),
        ("[::1]:8000:8000", "::1"),
        ({"target": 8000, "published": 8000, "host_ip": "127.0.0.1"}, "127.0.0.1"),
        ({"target": 8000, "published": 8000}, None),
    ],
)
def test_host_ip(port: object, ip: str | None) -> None:
    assert host_ip(port) == ip


def test_artifacts_volume_is_shared(compose: dict, services: dict) -> None:
    assert "artifacts" in (compose.get("volumes") or {})
    for name in ("migrate", "api", "worker"):
        assert "artifacts:/data/artifacts" in (services[name].get("volumes") or []), name


def test_depends_on_targets_exist_and_are_healthy_when_required(services: dict) -> None:
    problems = []
    for name, svc in services.items():
        for dep, spec in depends_on_of(svc).items():
            if dep not in services:
                problems.append(f"{name} depends on unknown service {dep}")
                continue
            condition = spec.get("condition")
            if condition == "service_healthy" and healthcheck_test(services[dep]) is None:
                problems.append(f"{name} waits for {dep} to be healthy but it has no healthcheck")
            if condition == "service_completed_successfully" and services[dep].get(
                "restart", "no"
            ) not in ("no", False):
                problems.append(f"{name} waits for {dep} to complete but {dep} restarts")
    assert not problems, problems


def test_api_and_worker_wait_for_migrations_and_redis(services: dict) -> None:
    for name in ("api", "worker"):
        deps = depends_on_of(services[name])
        assert deps.get("migrate", {}).get("condition") == "service_completed_successfully", name
        assert deps.get("redis", {}).get("condition") == "service_healthy", name
    assert depends_on_of(services["migrate"]).get("postgres", {}).get("condition") == (
        "service_healthy"
    )


def test_redis_requires_a_password_and_never_evicts(services: dict) -> None:
    command = services["redis"].get("command")
    words = command if isinstance(command, list) else shlex.split(command or "")
    words = [str(w) for w in words]
    assert "--requirepass" in words
    password = words[words.index("--requirepass") + 1]
    assert password.startswith("${REDIS_PASSWORD:?"), password
    # The healthcheck's redis-cli authenticates with the same password (REDISCLI_AUTH).
    assert env_of(services["redis"]).get("REDISCLI_AUTH") == password
    assert "--maxmemory-policy" in words
    assert words[words.index("--maxmemory-policy") + 1] == "noeviction"


def test_worker_reserves_an_nvidia_gpu(services: dict) -> None:
    devices = (
        services["worker"]
        .get("deploy", {})
        .get("resources", {})
        .get("reservations", {})
        .get("devices", [])
    )
    assert any(
        d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or []) for d in devices
    ), devices


def test_build_targets_match_dockerfile_stages(services: dict, stages: dict) -> None:
    targets = {
        name: svc["build"]["target"]
        for name, svc in services.items()
        if isinstance(svc.get("build"), dict) and "target" in svc["build"]
    }
    assert targets.get("api") == "api" and targets.get("worker") == "worker", targets
    for name, target in targets.items():
        assert target in stages, f"{name} builds unknown stage {target}"


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_defines_api_and_worker_stages(stages: dict) -> None:
    assert "api" in stages and "worker" in stages, sorted(stages)


def test_api_image_gets_only_the_cpu_torch(stages: dict) -> None:
    # The playground needs torch in the API; the CUDA build would be gigabytes for
    # nothing. The stages the api stage is built FROM (shared with the worker) have none.
    chain = stage_chain(stages, "api")
    for stage in chain:
        if stage != "api":
            assert not mentions_torch(stages[stage]), f"stage {stage} mentions torch"
    lines = stages["api"]
    assert mentions_torch(lines)
    assert any(
        line.upper().startswith("ARG API_TORCH_INDEX_URL=")
        and line.endswith("download.pytorch.org/whl/cpu")
        for line in lines
    ), lines


def test_worker_image_installs_torch(stages: dict) -> None:
    assert mentions_torch(stages["worker"])
    assert any(
        line.upper().startswith("RUN ") and "pip install" in line and "[worker]" in line
        for line in stages["worker"]
    ), "worker stage does not pip install the [worker] extra"


def test_images_copy_every_package_the_project_ships(stages: dict) -> None:
    # `pip install -e .` installs what pyproject names; a folder not copied is missing.
    found = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {name.rstrip("*") for name in found["include"]}
    for stage in ("api", "worker"):
        copied = {
            part.rstrip("/")
            for name in stage_chain(stages, stage)
            for line in stages[name]
            if line.upper().startswith("COPY ")
            for part in line.split()[1:-1]
        }
        assert packages <= copied, f"stage {stage} does not copy {sorted(packages - copied)}"


def test_images_run_as_non_root(stages: dict) -> None:
    for stage in ("api", "worker"):
        users = [
            line.split(None, 1)[1] for line in stages[stage] if line.upper().startswith("USER ")
        ]
        assert users and users[-1] not in ("root", "0"), f"{stage} runs as {users or 'root'}"


def test_api_image_exposes_port_and_has_healthcheck(stages: dict) -> None:
    lines = stages["api"]
    assert any(re.match(r"EXPOSE\s+8000\b", line, re.IGNORECASE) for line in lines)
    healthchecks = [line for line in lines if line.upper().startswith("HEALTHCHECK ")]
    assert healthchecks and "/healthz" in healthchecks[-1]


# --------------------------------------------------------------------------- CLI


def test_descent_subcommands_exist() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    commands = compose_commands(services) + dockerfile_commands(
        dockerfile_stages(DOCKERFILE.read_text())
    )
    used = {(where, sub) for where, cmd in commands for sub in descent_subcommands(cmd)}
    assert {sub for _, sub in used} >= {"api", "worker", "migrate"}, used
    unknown = sorted((where, sub) for where, sub in used if sub not in CLI_COMMANDS)
    assert not unknown, f"descent subcommands not in {sorted(CLI_COMMANDS)}: {unknown}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["descent", "api", "--port", "8000"], ["api"]),
        ("descent db-check", ["db-check"]),
        ("set -e; descent migrate && descent worker", ["migrate", "worker"]),
        (["sh", "-c", "descent up"], ["up"]),
        ("exec /usr/local/bin/descent worker", ["worker"]),
        (["celery", "-A", "workers.app", "inspect", "ping"], []),
        ("useradd --gid descent --home-dir /home/descent descent", []),
    ],
)
def test_subcommand_extraction(command: str | list[str], expected: list[str]) -> None:
    assert descent_subcommands(command) == expected


def test_api_image_installs_the_front_end_files(stages: dict) -> None:
    # /docs, /redoc and the dashboard need service/dashboard/vendor/, which is not in git:
    # the api stage copies the script and runs it after the package it installs into.
    lines = stages["api"]
    copies = [i for i, line in enumerate(lines) if line.upper().startswith("COPY ")]
    service = next(i for i in copies if "service/" in lines[i].split()[1:-1])
    script = next(i for i in copies if "scripts/vendor_assets.py" in lines[i])
    runs = [
        i
        for i, line in enumerate(lines)
        if line.upper().startswith("RUN ") and "scripts/vendor_assets.py" in line
    ]
    assert runs and runs[0] > max(service, script), lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "service/dashboard/vendor" in ignored, "a local install would skip the download"


# --------------------------------------------------------------------------- monitoring


def test_monitoring_runs_only_with_its_profile(services: dict) -> None:
    for name in MONITORING:
        assert services[name].get("profiles") == ["monitoring"], name
    for name in ("postgres", "redis", "migrate", "api", "worker"):
        assert not services[name].get("profiles"), f"{name} must start without a profile"


def test_prometheus_scrapes_the_api_with_a_token_and_every_worker(services: dict) -> None:
    config = yaml.safe_load((MONITORING_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["descent-api"]
    assert api["metrics_path"] == "/metrics"
    assert api["static_configs"][0]["targets"] == ["api:8000"]
    auth = api["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    # The token file lies in the folder compose mounts, which git ignores the contents of.
    mounts = services["prometheus"]["volumes"]
    assert "./examples/monitoring/secrets:/etc/prometheus/secrets:ro" in mounts
    assert auth["credentials_file"].startswith("/etc/prometheus/secrets/")
    ignored = (MONITORING_DIR / "secrets" / ".gitignore").read_text().split()
    assert "*" in ignored and "!.gitignore" in ignored

    worker_env = settings_of(services["worker"], STRONG_PASSWORDS)
    port = worker_env.worker_metrics_port
    assert port and worker_env.metrics_dir is not None
    assert str(port) in [str(p) for p in services["worker"].get("expose", [])]
    (sd,) = jobs["descent-workers"]["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == port


def test_grafana_dashboard_uses_only_metrics_that_exist(services: dict) -> None:
    sources = [*(ROOT / "service" / "metrics").glob("*.py"), ROOT / "workers" / "metrics.py"]
    defined = {
        name for path in sources for name in re.findall(r'"(descent_\w+)"', path.read_text())
    }
    dashboard = json.loads((MONITORING_DIR / "grafana" / "dashboards" / "descent.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    used = {name for expr in exprs for name in re.findall(r"\b(descent_\w+)", expr)}
    # Counters gain _total; histograms _bucket, _count and _sum.
    unknown = {
        name for name in used if re.sub(r"_(total|bucket|count|sum)$", "", name) not in defined
    }
    assert not unknown, f"the dashboard uses metrics nobody exports: {sorted(unknown)}"
    uid = yaml.safe_load(
        (MONITORING_DIR / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    assert {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p} == {uid}
