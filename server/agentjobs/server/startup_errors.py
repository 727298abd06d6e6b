"""What went wrong at start-up, said as one line an operator can act on:

    AGENTJOBS_GRPC_ADDRESS=127.0.0.1:50051: address in use; set another port or 0

`describe(exc, ...)` maps an exception raised while starting to a Problem: the setting
to change, its value (never a secret, never a password) and what to do. Configuration
problems exit with 2; anything unforeseen is still one line, and exits with 1.
"""

from __future__ import annotations

import errno
import re
import socket
import sqlite3
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, ValidationError

from agentjobs.server.config import MASUMI_NAMES, SettingProblem, Settings, env_name

EXIT_CONFIGURATION = 2
EXIT_UNEXPECTED = 1
DEBUG_HINT = "AGENTJOBS_LOG_LEVEL=DEBUG shows the traceback"

# Where in the code an exception comes from says which setting it concerns.
DATABASE_MODULES = (
    "agentjobs.server.repository",
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "sqlite3",
    "asyncpg",
)
HTTP_SERVER_MODULE = "agentjobs.server.api.http_server"
GRPC_SERVER_MODULE = "agentjobs.server.api.grpc_server"

LISTEN_ADVICE = {
    errno.EADDRINUSE: "address in use; set another port or 0",
    errno.EADDRNOTAVAIL: "not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its own",
    errno.EACCES: "no permission to listen there (ports below 1024 need privileges); "
    "use another port or 0",
}
_USERINFO = re.compile(r"(://)[^/@\s]*@")


@dataclass(frozen=True)
class Problem:
    # None: no one setting is to blame (the line then starts with the program's name).
    setting: str | None
    value: str | None
    advice: str
    exit_code: int = EXIT_CONFIGURATION

    def line(self) -> str:
        if self.setting is None:
            shown = "agentjobs-server"
        elif self.value is None:
            shown = f"{self.setting} is unset"
        else:
            shown = f"{self.setting}={self.value}"
        return " ".join(f"{shown}: {self.advice}".split())


def hide_credentials(text: str) -> str:
    """scheme://user:password@host -> scheme://***@host."""
    return _USERINFO.sub(r"\1***@", text)


def describe(exc: BaseException, settings: Settings | None, environ: Mapping[str, str]) -> Problem:
    """The Problem an exception raised at start-up stands for."""
    if isinstance(exc, SettingProblem):
        return Problem(exc.setting, _shown(exc.value), exc.advice)
    if isinstance(exc, ValidationError):
        return _invalid_setting(exc, environ)
    if settings is not None:
        found = _by_origin(exc, settings, environ)
        if found is not None:
            return found
    return unexpected(exc)


def unexpected(exc: BaseException) -> Problem:
    return Problem(
        None,
        None,
        f"could not start: {type(exc).__name__}: {_message(exc)} ({DEBUG_HINT})",
        EXIT_UNEXPECTED,
    )


def blame(setting: str, value: str, exc: BaseException) -> Problem:
    """An exception raised by the code a setting names (e.g. importing the agent)."""
    if isinstance(exc, SettingProblem):
        return Problem(exc.setting, _shown(exc.value), exc.advice)
    return Problem(setting, value, _agent_advice(exc))


# -- settings that pydantic refused -------------------------------------------------
def _invalid_setting(exc: ValidationError, environ: Mapping[str, str]) -> Problem:
    errors = exc.errors(include_url=False)
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, SettingProblem):
        return Problem(cause.setting, _shown(cause.value), cause.advice + more)
    field = _field_of(str(first["loc"][0])) if first["loc"] else None
    if field is None:
        return Problem(None, None, _pydantic_message(first["msg"]) + more)
    value = first.get("input")
    secret = Settings.model_fields[field].annotation in (SecretStr, SecretStr | None)
    shown = "***" if secret else _shown(str(value))
    return Problem(env_name(field, environ), shown, _pydantic_message(first["msg"]) + more)


def _field_of(location: str) -> str | None:
    """The field a validation error's location names: a field name or a masumi name."""
    key = location.lower()
    if key in Settings.model_fields:
        return key
    by_masumi = {masumi.lower(): field for field, masumi in MASUMI_NAMES.items()}
    return by_masumi.get(key)


def _pydantic_message(message: str) -> str:
    # "Input should be 'Preprod' or 'Mainnet'" -> "should be 'Preprod' or 'Mainnet'"
    for prefix in ("Value error, ", "Input "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


# -- failures of a part the settings configure ---------------------------------------
def _by_origin(
    exc: BaseException, settings: Settings, environ: Mapping[str, str]
) -> Problem | None:
    modules = set(_modules_of(exc))
    if _from(modules, DATABASE_MODULES) or _is_database_error(exc):
        return _database_problem(exc, settings, environ)
    if HTTP_SERVER_MODULE in modules and isinstance(exc, OSError):
        return listen_problem("AGENTJOBS_HTTP_ADDRESS", settings.http_address, exc)
    if GRPC_SERVER_MODULE in modules:
        return _grpc_problem(exc, settings)
    return None


def _modules_of(exc: BaseException) -> Iterator[str]:
    """The modules of the frames an exception (and what caused it) went through."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame, _ in traceback.walk_tb(current.__traceback__):
            yield str(frame.f_globals.get("__name__", ""))
        current = current.__cause__ or current.__context__


def _from(modules: set[str], prefixes: tuple[str, ...]) -> bool:
    return any(m == p or m.startswith(p + ".") for m in modules for p in prefixes)


def _is_database_error(exc: BaseException) -> bool:
    return type(exc).__module__.partition(".")[0] in ("sqlalchemy", "asyncpg", "sqlite3")


def listen_problem(setting: str, address: str, exc: OSError) -> Problem:
    if isinstance(exc, socket.gaierror):
        return Problem(
            setting, address, "unknown host; use an IP address or a name this machine has"
        )
    advice = LISTEN_ADVICE.get(exc.errno or 0, f"cannot listen there: {exc.strerror or exc}")
    return Problem(setting, address, advice)


def _grpc_problem(exc: BaseException, settings: Settings) -> Problem:
    if isinstance(exc, OSError) and exc.filename is not None:
        for field in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
            path = getattr(settings, field)
            if path is not None and Path(exc.filename) == path:
                return Problem(env_name(field), str(path), f"cannot read it: {exc.strerror}")
    if isinstance(exc, OSError) and exc.errno in LISTEN_ADVICE:
        return listen_problem("AGENTJOBS_GRPC_ADDRESS", settings.grpc_address, exc)
    tls = " (with TLS: or the certificate and key do not match)" if settings.tls_cert_file else ""
    return Problem(
        "AGENTJOBS_GRPC_ADDRESS",
        settings.grpc_address,
        f"gRPC cannot listen there{tls}; set another port or 0",
    )


def database_value(settings: Settings) -> str:
    if settings.database_url is None:
        return f"sqlite:///{Path.cwd() / 'agentjobs.db'}"
    return _database_url_shown(settings.database_url)


def _database_url_shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: at least hide what looks like one
        return hide_credentials(url)


def _database_problem(
    exc: BaseException, settings: Settings, environ: Mapping[str, str]
) -> Problem:
    setting, value = "AGENTJOBS_DATABASE_URL", database_value(settings)
    cause = _innermost_database_error(exc)
    path = _sqlite_path(settings)
    message = _message(cause)
    if isinstance(cause, sqlite3.Error) or path is not None:
        advice = _sqlite_advice(cause, message, path)
    else:
        advice = _postgres_advice(cause, message)
    return Problem(setting, value, advice)


def _innermost_database_error(exc: BaseException) -> BaseException:
    """The driver's own error, which says more than SQLAlchemy's wrappers of it."""
    current = exc
    for _ in range(10):
        inner = getattr(current, "orig", None) or current.__cause__
        if not isinstance(inner, BaseException):
            break
        current = inner
    return current


def _sqlite_path(settings: Settings) -> Path | None:
    from agentjobs.server.repository.database_url import Backend, parse_database_url

    try:
        target = parse_database_url(settings.database_url)
    except ValueError:
        return None
    if target.backend is not Backend.SQLITE or target.url is None or not target.url.database:
        return None
    return Path(target.url.database).absolute()


def _sqlite_advice(cause: BaseException, message: str, path: Path | None) -> str:
    where = str(path) if path is not None else "the database file"
    lowered = message.lower()
    if "not a database" in lowered or "malformed" in lowered:
        return (
            f"{where} is not a usable SQLite database (corrupt, or another kind of file); "
            "restore it from a backup or point the URL at another file"
        )
    if "locked" in lowered or "busy" in lowered:
        # Waited for START_LOCK_WAIT_S (the WAL switch) or the write busy timeout.
        return f"{where} is locked by another process; stop that process or use another file"
    if "readonly" in lowered or "read-only" in lowered:
        return f"{where} is read-only; make it and its directory writable"
    if isinstance(cause, OSError) and cause.filename is not None:
        made = Path(str(cause.filename)).absolute()
        return f"cannot create {made}: {cause.strerror}; choose a writable path"
    if "unable to open" in lowered:
        return f"cannot open {where}: check that it is a file in a directory this user may write"
    return f"SQLite failed on {where}: {message}"


def _postgres_advice(cause: BaseException, message: str) -> str:
    if isinstance(cause, socket.gaierror):
        return f"unknown database host ({cause.strerror}); fix the host in the URL"
    if isinstance(cause, ConnectionRefusedError):
        return "nothing accepts connections there; start PostgreSQL or fix the host and port"
    if isinstance(cause, TimeoutError):
        return "the database did not answer in time; check the host, port and firewall"
    if isinstance(cause, OSError):
        return f"cannot connect: {cause.strerror or message}; fix the host and port"
    if type(cause).__module__.startswith("asyncpg"):
        return f"PostgreSQL refused: {message}; fix the URL or create what it names"
    if isinstance(cause, ValueError):
        return message
    return f"the database failed: {type(cause).__name__}: {message}"


def _agent_advice(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return (
            f"no module named {exc.name!r}; install it or add its directory to PYTHONPATH "
            "(the value is module:attribute)"
        )
    if isinstance(exc, AttributeError):
        return f"{_message(exc)}; name the Agent or handler the module defines"
    if isinstance(exc, TypeError):
        return f"{_message(exc)}; point it at an Agent or an async handler function"
    if isinstance(exc, ValueError):
        return _message(exc)
    return f"importing it failed: {type(exc).__name__}: {_message(exc)}"


# -- small helpers -------------------------------------------------------------------
def _shown(value: str | None) -> str | None:
    return None if value is None else hide_credentials(value)


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return hide_credentials(" ".join(text.split()))[:300]


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def secrets_of(settings: Settings | None, environ: Mapping[str, str]) -> list[str]:
    """Values no line may show: the operator token and the payment API key."""
    values: list[str] = []
    if settings is not None:
        for secret in (settings.operator_token, settings.payment_api_key):
            if secret is not None:
                values.append(secret.get_secret_value())
    for name in ("AGENTJOBS_OPERATOR_TOKEN", "AGENTJOBS_PAYMENT_API_KEY", "PAYMENT_API_KEY"):
        if environ.get(name):
            values.append(environ[name])
    return [v for v in values if v]


def redact(line: str, secrets: list[str]) -> str:
    for secret in secrets:
        line = line.replace(secret, "***")
    return line
