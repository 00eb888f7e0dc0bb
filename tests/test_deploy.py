"""The deployment files in deploy/ (docs/DEPLOY.md), checked without Docker.

compose.yaml is parsed (by a strict YAML-subset reader: PyYAML is not a dependency; when it
is importable the two readings must agree), interpolated with .env.example and checked: every
service has an image or a build, the workers wait for the one-shot migration and for healthy
PostgreSQL and Redis, long-running services have health checks, nothing we build runs as
root, every ``${VAR}`` is in .env.example and every ``CARELINE_*`` name anywhere in the
deployment is a real setting. The Dockerfile, the systemd units, the Caddyfiles and the alert
rules are checked against the code: the commands they run parse with the real CLI parser, and
the reverse proxies pass exactly the public routes of the webhook server built by
``Careline.start`` (a new public endpoint missing from a proxy fails here). Where ``docker
compose`` exists, ``docker compose config`` validates the file too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import pytest

from bot.cli import _parser
from bot.settings import Settings, load_settings
from flows.slip import CJK_FONT_ENV

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
UNITS = DEPLOY / "systemd"
CADDYFILES = (DEPLOY / "Caddyfile", UNITS / "Caddyfile")
DEPLOY_DOC = ROOT / "docs" / "DEPLOY.md"
OUR_IMAGE = "careline:local"
# Routes the webhook server serves that must stay off the public side of the proxy: the
# container health check and Prometheus reach them on the internal network.
INTERNAL_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Third-party images whose own entry point runs the server as an unprivileged user (postgres
# and redis switch to their users before exec; prometheus's image is USER nobody).
PRIVILEGE_DROPPING_IMAGES = frozenset({"postgres", "redis", "prom/prometheus"})
TELEGRAM_BULK_PER_S = 30  # Telegram's free bulk messages per second per bot (DESIGN.md §7)
SETTING_NAME = re.compile(r"\bCARELINE_[A-Z0-9_]*[A-Z0-9]\b")


# --- a strict YAML subset ---------------------------------------------------------------------


class YamlSubsetError(ValueError):
    """The text uses YAML this reader does not accept (so it cannot silently misread it)."""


@dataclasses.dataclass
class _Line:
    indent: int
    text: str
    number: int


_KEY = re.compile(r'^(?P<key>[A-Za-z0-9_.$/{}-]+|"[^"]*"):(?:\s+(?P<rest>.*))?$')
_FORBIDDEN_START = tuple("&*!|>%@`{")
_AMBIGUOUS = frozenset({"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off"})


def _strip_comment(raw: str) -> str:
    """The line without a comment (``#`` at the start or after a space, outside quotes)."""
    quote = ""
    for i, ch in enumerate(raw):
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "\"'" and (i == 0 or raw[i - 1] in " [,:-"):
            quote = ch
        elif ch == "#" and (i == 0 or raw[i - 1] == " "):
            return raw[:i].rstrip()
    return raw.rstrip()


def _scalar(text: str, number: int) -> Any:
    if text.startswith('"'):
        if not text.endswith('"') or len(text) < 2:
            raise YamlSubsetError(f"line {number}: unterminated string")
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise YamlSubsetError(f"line {number}: unterminated string")
        return text[1:-1].replace("''", "'")
    if text.startswith("["):
        return _flow_sequence(text, number)
    if text.startswith(_FORBIDDEN_START) or text in ("---", "..."):
        raise YamlSubsetError(f"line {number}: unsupported YAML: {text!r}")
    if text in _AMBIGUOUS:
        raise YamlSubsetError(f"line {number}: quote {text!r} (a boolean in YAML 1.1)")
    if ": " in text or text.endswith(":") or " #" in text:
        raise YamlSubsetError(f"line {number}: ambiguous plain scalar {text!r}")
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~"):
        return None
    if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text):
        return int(text)
    if re.fullmatch(r"[-+]?[0-9][0-9_.eE+-]*", text):
        raise YamlSubsetError(f"line {number}: quote the number-like {text!r}")
    return text


def _flow_sequence(text: str, number: int) -> list[Any]:
    if not text.endswith("]"):
        raise YamlSubsetError(f"line {number}: a flow sequence must end on its line")
    inner, items, current, quote = text[1:-1], [], "", ""
    for ch in inner:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            current += ch
        elif ch == ",":
            items.append(current.strip())
            current = ""
        elif ch in "[]{}":
            raise YamlSubsetError(f"line {number}: nested flow collections are not supported")
        else:
            current += ch
    if current.strip():
        items.append(current.strip())
    return [_scalar(item, number) for item in items]


def _block(lines: list[_Line], i: int, indent: int) -> tuple[Any, int]:
    if lines[i].text == "-" or lines[i].text.startswith("- "):
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _nested(lines: list[_Line], i: int, indent: int, number: int) -> tuple[Any, int]:
    """The block after ``key:`` or ``-`` on line ``i - 1`` (None if there is none)."""
    if i < len(lines) and lines[i].indent > indent:
        return _block(lines, i, lines[i].indent)
    if i < len(lines) and lines[i].indent == indent and lines[i].text.startswith("- "):
        return _sequence(lines, i, indent)
    return None, i


def _sequence(lines: list[_Line], i: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while i < len(lines) and lines[i].indent == indent:
        line = lines[i]
        if not (line.text == "-" or line.text.startswith("- ")):
            break
        item = line.text[1:].strip()
        if not item:
            value, i = _nested(lines, i + 1, indent, line.number)
        elif _KEY.match(item):
            # "- key: value": a mapping whose keys sit where "key" starts.
            lines[i] = _Line(indent + len(line.text) - len(item), item, line.number)
            value, i = _mapping(lines, i, lines[i].indent)
        else:
            value, i = _scalar(item, line.number), i + 1
        items.append(value)
    return items, i


def _mapping(lines: list[_Line], i: int, indent: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while i < len(lines) and lines[i].indent == indent:
        line = lines[i]
        match = _KEY.match(line.text)
        if match is None:
            raise YamlSubsetError(f"line {line.number}: expected `key: value`: {line.text!r}")
        key = match["key"]
        key = json.loads(key) if key.startswith('"') else key
        if key in result:
            raise YamlSubsetError(f"line {line.number}: duplicate key {key!r}")
        rest = match["rest"]
        if rest is None or rest == "":
            result[key], i = _nested(lines, i + 1, indent, line.number)
        else:
            result[key], i = _scalar(rest, line.number), i + 1
    if i < len(lines) and lines[i].indent > indent:
        raise YamlSubsetError(f"line {lines[i].number}: unexpected indentation")
    return result, i


def parse_yaml_subset(text: str) -> Any:
    """Block mappings and sequences, one-line flow sequences of scalars, plain, single- and
    double-quoted scalars, comments. Anything else (anchors, tags, block scalars, flow
    mappings, YAML 1.1 booleans, tabs, duplicate keys) raises :class:`YamlSubsetError`."""
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        body = raw.lstrip(" ")
        if body.startswith("\t"):
            raise YamlSubsetError(f"line {number}: tab indentation")
        stripped = _strip_comment(raw)
        if stripped.strip():
            indent = len(stripped) - len(stripped.lstrip(" "))
            lines.append(_Line(indent, stripped.strip(), number))
    if not lines:
        return None
    value, end = _block(lines, 0, lines[0].indent)
    if end != len(lines):
        raise YamlSubsetError(f"line {lines[end].number}: unexpected content")
    return value


def load_yaml(path: Path) -> Any:
    """``path`` read by the subset reader, and by PyYAML too when it is installed."""
    text = path.read_text(encoding="utf-8")
    data = parse_yaml_subset(text)
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return data
    assert yaml.safe_load(text) == data, f"{path.name}: the subset reader misread it"
    return data


def test_yaml_subset_reader_refuses_what_it_cannot_read() -> None:
    """The reader reads what the deployment files use and refuses the rest."""
    assert parse_yaml_subset('a:\n  - "x: y"\n  - b: 1\n    c: [d, "e"]\nf: no-op\n') == {
        "a": ["x: y", {"b": 1, "c": ["d", "e"]}],
        "f": "no-op",
    }
    for text in ("a: &x 1", "a: |\n  b", "a: {b: 1}", "a: no", "a: 1\na: 2", "a: 0644"):
        with pytest.raises(YamlSubsetError):
            parse_yaml_subset(text)


# --- compose.yaml, .env.example --------------------------------------------------------------


def env_example() -> tuple[dict[str, str], set[str]]:
    """.env.example's values, and every name it mentions in a commented-out assignment."""
    values: dict[str, str] = {}
    commented: set[str] = set()
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            match = re.match(r"#\s*([A-Z][A-Z0-9_]*)=", line)
            if match:
                commented.add(match[1])
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f".env.example: {raw!r}"
        assert name not in values, f".env.example sets {name} twice"
        values[name] = value
    return values, commented


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``, with ``env``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        found = env.get(name)
        if op in (":-", "-"):
            return found if found or (op == "-" and found is not None) else arg
        if op in (":?", "?"):
            assert found, f"{name} is required: {arg}"
        assert found is not None, f"${{{name}}} is not set"
        return found

    parts = value.split("$$")
    out = [_VARIABLE.sub(one, part) for part in parts]
    for part in out:
        assert "$" not in part, f"unsupported variable syntax in {value!r}"
    return "$".join(out)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml as Compose would see it with .env.example as its .env."""
    raw = load_yaml(COMPOSE)
    values, _ = env_example()
    data = interpolate(raw, values)
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services of the compose file."""
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def ours(service: dict[str, Any]) -> bool:
    """Does this service run the image built from deploy/Dockerfile?"""
    return "build" in service or service.get("image") == OUR_IMAGE


def container_env(service: dict[str, Any]) -> dict[str, str]:
    """The environment a service's containers get: env_file (.env.example), then
    ``environment``, then secrets (the entry point exports them under their own names)."""
    env: dict[str, str] = {}
    if service.get("env_file"):
        assert service["env_file"] == ".env", "env_file must be the .env made from .env.example"
        env.update(env_example()[0])
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "environment: use the mapping form"
    env.update({k: str(v) for k, v in environment.items()})
    for name in service.get("secrets") or []:
        env[name] = "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"  # a token-shaped stand-in
    return env


def cli_args(command: list[str]) -> list[str]:
    """The arguments after ``bot.py`` (what the image's entry point passes on)."""
    return [str(part) for part in command]


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    """Nothing in the stack is left for Compose to guess."""
    for name, service in services(compose).items():
        assert "image" in service or "build" in service, name
    built = [n for n, s in services(compose).items() if "build" in s]
    assert built == ["careline"], "one service builds the image; the others reuse it"
    assert services(compose)["careline"]["image"] == OUR_IMAGE
    assert services(compose)["careline"]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_workers_wait_for_the_migration_and_healthy_backends(compose: dict[str, Any]) -> None:
    """Workers start after `bot.py migrate` exited 0 and PostgreSQL and Redis are healthy."""
    svc = services(compose)
    workers = svc["careline"]
    assert workers["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    migrate = svc["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert int(workers["deploy"]["replicas"]) >= 2
    # The migration and the workers see the same database, data dir and keys.
    for key in ("CARELINE_DATABASE_URL",):
        assert container_env(migrate)[key] == container_env(workers)[key]
    assert set(migrate["volumes"]) == set(workers["volumes"])


def test_commands_are_real_cli_commands(compose: dict[str, Any]) -> None:
    """Every command given to our image parses with bot.py's own parser (a renamed command
    or flag breaks this, not the deployment)."""
    parser = _parser()
    checked = [name for name, service in services(compose).items() if ours(service)]
    assert sorted(checked) == ["careline", "keystore-copy", "migrate"]
    for name in checked:
        parser.parse_args(cli_args(services(compose)[name]["command"]))
    run = cli_args(services(compose)["careline"]["command"])
    assert run[0] == "run"
    assert parser.parse_args(run).workers >= 1


def test_workers_get_a_valid_webhook_configuration(compose: dict[str, Any]) -> None:
    """The workers' environment (with token stand-ins) loads as Careline's settings, in
    webhook mode on PostgreSQL and Redis, sharing the inbox, with the secrets as secrets."""
    env = container_env(services(compose)["careline"])
    assert set(services(compose)["careline"]["secrets"]) == {
        "CARELINE_PATIENT_BOT_TOKEN",
        "CARELINE_DOCTOR_BOT_TOKEN",
        "CARELINE_WEBHOOK_SECRET",
    }
    fields = {f"CARELINE_{name.upper()}": name for name in Settings.model_fields}
    kwargs: dict[str, Any] = {fields[k]: v for k, v in env.items() if k in fields and v != ""}
    kwargs["webhook_secret"] = "s" * 32
    settings = load_settings(**kwargs)
    assert settings.webhook_url == "https://" + env_example()[0]["CLINIC_DOMAIN"]
    assert settings.public_url == settings.webhook_url
    assert settings.effective_database_url.startswith("postgresql+asyncpg://")
    assert settings.redis_url
    assert settings.shared_inbox
    assert settings.verify_trust_proxy
    assert settings.verify_trusted_proxies == (env_example()[0]["EDGE_SUBNET"],)
    assert settings.webhook_port == Settings.model_fields["webhook_port"].default
    # One worker at a time sends the bulk calls (the bulk lead): the deployment's bulk rate
    # is the setting itself, within Telegram's ~30 per second per bot.
    assert settings.outbox_global_per_s <= TELEGRAM_BULK_PER_S


def test_vm_settings_load_and_share_telegrams_rate() -> None:
    """careline.env.example (with a token and a secret filled in) loads as settings, the VM
    Caddyfile balances over several workers, and the bulk rate (sent by one leading worker)
    stays within Telegram's."""
    env: dict[str, str] = {}
    for raw in (UNITS / "careline.env.example").read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            name, _, value = raw.partition("=")
            env[name] = value
    fields = {f"CARELINE_{name.upper()}": name for name in Settings.model_fields}
    kwargs: dict[str, Any] = {fields[k]: v for k, v in env.items() if v != ""}
    kwargs["patient_bot_token"] = "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    kwargs["doctor_bot_token"] = "987654321:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
    kwargs["webhook_secret"] = "s" * 32
    settings = load_settings(**kwargs, shared_inbox=True)
    assert settings.effective_database_url.startswith("postgresql+asyncpg://")
    upstreams = re.findall(r"127\.0\.0\.1:(\d+)", (UNITS / "Caddyfile").read_text("utf-8"))
    assert len(upstreams) >= 2
    assert settings.outbox_global_per_s <= TELEGRAM_BULK_PER_S


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    """Everything that keeps running says whether it is healthy; the workers ask /readyz."""
    for name, service in services(compose).items():
        if service.get("restart") == "no":
            continue
        check = service.get("healthcheck")
        assert check and isinstance(check["test"], list) and check["test"][0] == "CMD", name
    worker_check = services(compose)["careline"]["healthcheck"]["test"]
    assert worker_check == ["CMD", "python", "/app/healthcheck.py", "/readyz"]


def test_no_service_runs_as_root_where_we_control_it(compose: dict[str, Any]) -> None:
    """Our image runs as its non-root user; third-party ones drop privileges themselves or run
    with every capability dropped; nothing may gain privileges."""
    for name, service in services(compose).items():
        user = str(service.get("user", ""))
        assert user.split(":")[0] not in ("root", "0"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        image = str(service.get("image", "")).split(":")[0]
        if ours(service):
            assert not user, f"{name}: let the image's USER apply"
            assert service.get("read_only") is True, name
            assert service.get("cap_drop") == ["ALL"], name
        elif image not in PRIVILEGE_DROPPING_IMAGES:
            assert service.get("cap_drop") == ["ALL"], f"{name} may run as root: drop ALL caps"


def test_every_variable_is_in_env_example() -> None:
    """Each ``${VAR}`` compose.yaml uses is set in .env.example (defaults or not)."""
    values, _ = env_example()
    used = {m["name"] for m in _VARIABLE.finditer(COMPOSE.read_text(encoding="utf-8"))}
    assert used, "compose.yaml uses no variables?"
    assert used - set(values) == set()
    unused = {name for name in values if not name.startswith("CARELINE_")} - used
    assert unused == set(), "Compose variables in .env.example that compose.yaml never uses"


def deployment_texts() -> Iterator[tuple[str, str]]:
    """Every deployment file (and docs/DEPLOY.md) by name, with its text."""
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.suffix not in (".pyc",):
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
    yield "docs/DEPLOY.md", DEPLOY_DOC.read_text(encoding="utf-8")


def test_careline_names_are_real_settings() -> None:
    """Every ``CARELINE_*`` name in the deployment files and docs/DEPLOY.md is a setting of
    bot/settings.py (or the slip font's variable): a renamed setting breaks this test."""
    real = {f"CARELINE_{name.upper()}" for name in Settings.model_fields} | {CJK_FONT_ENV}
    for name, text in deployment_texts():
        unknown = set(SETTING_NAME.findall(text)) - real
        assert unknown == set(), f"{name} names settings that do not exist: {sorted(unknown)}"
    values, commented = env_example()
    assert {n for n in values if n.startswith("CARELINE_")} | commented <= real


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined), as (INSTRUCTION, rest)."""
    joined: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def test_dockerfile_is_slim_non_root_and_without_dev_extras() -> None:
    """python:3.11-slim stages; the final stage runs as a named non-root user, installs no
    compilers, exposes the webhook port, has a health check and runs `bot.py run`."""
    steps = dockerfile_instructions()
    stages = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    assert stages and all(steps[i][1].startswith("python:3.11-slim") for i in stages)
    final = steps[stages[-1] :]
    users = [rest for op, rest in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for op, rest in steps:
        if op == "RUN" and "pip install" in rest:
            assert "[dev]" not in rest and " -e " not in rest, rest
        if op == "RUN" and "apt-get install" in rest:
            assert not re.search(r"\b(gcc|g\+\+|build-essential|make)\b", rest), rest
    assert any(op == "RUN" and "fonts-droid-fallback" in rest for op, rest in final)
    exposed = [rest for op, rest in final if op == "EXPOSE"]
    assert exposed == [str(Settings.model_fields["webhook_port"].default)]
    health = [rest for op, rest in final if op == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0]
    entry = json.loads(next(rest for op, rest in final if op == "ENTRYPOINT"))
    cmd = json.loads(next(rest for op, rest in final if op == "CMD"))
    assert entry[-1] == "/app/docker-entrypoint.sh" and cmd == ["run"]
    _parser().parse_args(cmd)
    entrypoint = (DEPLOY / "docker-entrypoint.sh").read_text(encoding="utf-8")
    assert 'exec python /app/bot.py "$@"' in entrypoint


def test_dockerfile_copies_what_exists() -> None:
    """Every file the Dockerfile copies from the build context is in the repository."""
    for op, rest in dockerfile_instructions():
        if op != "COPY" or rest.startswith("--from"):
            continue
        *sources, _dest = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"


# --- systemd ----------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as sections of (key, value) pairs, in order (systemd allows a key more than
    once, e.g. several ExecStart= of a oneshot, so this is not a configparser dict)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: keep each setting on one line"
        header = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if header:
            assert header[1] not in sections, f"{path.name}:{number}: section repeated"
            current = sections.setdefault(header[1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z]+", key), f"{path.name}:{number}: {line!r}"
        assert current is not None, f"{path.name}:{number}: a setting before any section"
        current.append((key, value))
    return sections


def unit_values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    """Every value of ``key`` in ``section``."""
    return [v for k, v in unit.get(section, []) if k == key]


SANDBOX = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
}


def test_systemd_units_parse_and_run_real_commands() -> None:
    """Each unit parses; each service runs as the careline user in a sandbox with the state
    directory writable, and each ExecStart is a command bot.py's parser accepts."""
    parser = _parser()
    units = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.target"))
    units += sorted(UNITS.glob("*.timer"))
    assert {p.name for p in units} >= {
        "careline@.service",
        "careline-migrate.service",
        "careline.target",
    }
    release = dict(
        line.split("=", 1)
        for line in (UNITS / "release.env.example").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert set(release) == {"RELEASE_DIR"}
    commands: dict[str, list[list[str]]] = {}
    for path in units:
        unit = read_unit(path)
        assert set(unit) <= {"Unit", "Service", "Install", "Timer"}, path.name
        assert unit_values(unit, "Unit", "Description"), path.name
        if path.suffix == ".timer":
            assert (UNITS / path.name.replace(".timer", ".service")).exists(), path.name
            continue
        if path.suffix != ".service":
            continue
        assert unit_values(unit, "Service", "User") == ["careline"], path.name
        assert unit_values(unit, "Service", "EnvironmentFile") == [
            "/etc/careline/release.env",
            "/etc/careline/careline.env",
        ]
        for key, value in SANDBOX.items():
            assert unit_values(unit, "Service", key) == [value], f"{path.name}: {key}"
        writable = " ".join(unit_values(unit, "Service", "ReadWritePaths")).split()
        assert "/var/lib/careline" in writable, path.name
        commands[path.name] = []
        for exec_start in unit_values(unit, "Service", "ExecStart"):
            # systemd substitutes ${VAR} from the environment files, but never in the program
            # itself (so the program is /usr/bin/env where the path comes from a variable).
            assert not exec_start.startswith("$"), path.name
            for variable in re.findall(r"\$\{(\w+)\}", exec_start):
                assert variable in release, f"{path.name}: ${{{variable}}} is never set"
            argv = shlex.split(exec_start.replace("%i", "8441"))
            script = next(i for i, a in enumerate(argv) if a.endswith("/bot.py"))
            args = argv[script + 1 :]
            parser.parse_args(args)
            commands[path.name].append(args)
    assert commands["careline-migrate.service"] == [["migrate"]]
    assert commands["careline@.service"][0][0] == "run"
    worker = read_unit(UNITS / "careline@.service")
    assert unit_values(worker, "Unit", "Requires") == ["careline-migrate.service"]
    assert "careline-migrate.service" in unit_values(worker, "Unit", "After")[0].split()
    assert "CARELINE_SHARED_INBOX=true" in unit_values(worker, "Service", "ExecStart")[0]
    assert "CARELINE_WEBHOOK_PORT=%i" in unit_values(worker, "Service", "ExecStart")[0]
    migrate = read_unit(UNITS / "careline-migrate.service")
    assert unit_values(migrate, "Service", "Type") == ["oneshot"]
    # Without RemainAfterExit, `systemctl start careline-migrate` runs it again on an upgrade.
    assert unit_values(migrate, "Service", "RemainAfterExit") == []


# --- the reverse proxies against the routes the webhook server serves -------------------------


async def _webhook_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The canonical paths of the aiohttp app ``Careline.start`` builds in webhook mode, with
    stand-ins for the database, the bots and the background tasks (caught before it listens)."""
    from aiohttp import web

    from bot.app import ROLES, Careline

    captured: list[web.Application] = []

    class Captured(Exception):
        pass

    def runner(app: web.Application, *args: Any, **kwargs: Any) -> Any:
        captured.append(app)
        raise Captured

    monkeypatch.setattr(web, "AppRunner", runner)
    settings = load_settings(
        patient_bot_token="123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        doctor_bot_token="987654321:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        webhook_url="https://careline.example.org",
        webhook_secret="s" * 32,
        data_dir=tmp_path,
    )
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(Careline):
        if field.default is not dataclasses.MISSING:
            continue
        if field.default_factory is not dataclasses.MISSING:
            continue
        if field.name == "settings":
            kwargs[field.name] = settings
        elif field.name == "bots":
            kwargs[field.name] = {role: AsyncMock() for role in ROLES}
        else:
            kwargs[field.name] = AsyncMock()
    app = Careline(**kwargs)
    try:
        with pytest.raises(Captured):
            await app.start()
    finally:
        tasks = [t for t in getattr(app, "_tasks", []) if isinstance(t, asyncio.Task)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(captured) == 1
    return {route.resource.canonical for route in captured[0].router.routes() if route.resource}


def caddy_paths(path: Path) -> list[str]:
    """The path patterns of the Caddyfile's ``@careline path …`` matcher (the proxied set)."""
    matchers = re.findall(r"^\s*@careline\s+path\s+(.+)$", path.read_text(encoding="utf-8"), re.M)
    assert len(matchers) == 1, f"{path.name}: one `@careline path …` line"
    return matchers[0].split()


def caddy_matches(pattern: str, request_path: str) -> bool:
    """Caddy's path matcher for the two forms used here: exact, or a prefix ending in ``*``."""
    assert "*" not in pattern[:-1], f"unsupported Caddy path pattern {pattern!r}"
    if pattern.endswith("*"):
        return request_path.lower().startswith(pattern[:-1].lower())
    return request_path.lower() == pattern.lower()


def sample(canonical: str) -> str:
    """A concrete request path for an aiohttp route (``/r/{code}`` -> ``/r/x``)."""
    return re.sub(r"\{[^}]*\}", "x", canonical)


@pytest.fixture
async def served_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The routes of the webhook server as ``Careline.start`` builds it."""
    return await _webhook_routes(tmp_path, monkeypatch)


@pytest.mark.parametrize("caddyfile", CADDYFILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_proxy_passes_exactly_the_public_routes(caddyfile: Path, served_routes: set[str]) -> None:
    """Every route of the webhook server is proxied unless it is internal (health, metrics),
    and no internal one is; the health checks and Prometheus ask routes that exist."""
    routes = served_routes
    assert any(r.startswith("/webhook/") for r in routes)
    patterns = caddy_paths(caddyfile)
    for route in routes:
        proxied = any(caddy_matches(p, sample(route)) for p in patterns)
        if route in INTERNAL_PATHS:
            assert not proxied, f"{caddyfile.name} exposes the internal route {route}"
        else:
            assert proxied, f"{caddyfile.name} does not proxy {route}: add it to @careline"
    assert routes >= INTERNAL_PATHS, "the health checks and Prometheus ask routes the app serves"
    text = caddyfile.read_text(encoding="utf-8")
    assert "respond 404" in text, "everything else must be refused"
    port = str(Settings.model_fields["webhook_port"].default)
    if caddyfile.parent == DEPLOY:
        assert re.search(rf"^\s*port {port}$", text, re.M), "Caddy must dial the workers' port"


def test_alert_rules_use_real_metrics_and_runbook_sections() -> None:
    """Each alert's expression names metrics bot/ops_web.py exports, and its runbook link is
    a section of docs/DEPLOY.md."""
    rules = load_yaml(DEPLOY / "prometheus-alerts.yml")["groups"][0]["rules"]
    source = (ROOT / "bot" / "ops_web.py").read_text(encoding="utf-8")
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", doc, re.M)
    }
    assert rules
    for rule in rules:
        for metric in re.findall(r"\bcareline_[a-z_]+", rule["expr"]):
            base = metric.removesuffix("_total")
            short = base.removeprefix("careline_")
            assert f'"{base}"' in source or f'"{short}"' in source, f"no metric {metric}"
        runbook = rule["annotations"]["runbook"]
        assert runbook.startswith("docs/DEPLOY.md#")
        assert runbook.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {runbook}"
    prometheus = load_yaml(DEPLOY / "prometheus.yml")
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"][0]["port"] == Settings.model_fields["webhook_port"].default


# --- Docker itself, where it is installed -----------------------------------------------------


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    """`docker compose config` accepts the file (all profiles), with .env.example as .env."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed (the file is parsed and checked above)")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("docker has no compose plugin (the file is parsed and checked above)")
    copy = tmp_path / "deploy"
    profiles = ("--profile", "monitoring", "--profile", "tools")
    shutil.copytree(DEPLOY, copy)
    shutil.copy(ENV_EXAMPLE, copy / ".env")
    for name in ("CARELINE_PATIENT_BOT_TOKEN", "CARELINE_DOCTOR_BOT_TOKEN"):
        (copy / "secrets" / name).write_text("123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    (copy / "secrets" / "CARELINE_WEBHOOK_SECRET").write_text("s" * 32)
    done = subprocess.run(
        [docker, "compose", "-f", str(copy / "compose.yaml"), *profiles, "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=copy,
    )
    assert done.returncode == 0, done.stderr
