"""Every setting synmon has, read from ``SYNMON_*`` environment variables.

This module is the only place that reads the environment. Everything else receives a
``Settings`` object, so a test or a subprocess changes behaviour by changing the
environment it passes, never by patching modules.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Literal

Environment = Literal["dev", "test", "prod"]
ENVIRONMENTS: tuple[Environment, ...] = ("dev", "test", "prod")

# Message versions this release can read. Producers write ``message_version``.
CURRENT_MESSAGE_VERSION = 2
SUPPORTED_MESSAGE_VERSIONS = (1, 2)

SECRET_PREFIX = "SYNMON_VAR_"  # noqa: S105 - a variable name prefix, not a password
PUBLIC_PREFIX = "SYNMON_PUBLIC_VAR_"
_LOCATION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class ConfigError(ValueError):
    """A setting has a value synmon cannot use; the message names the variable."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowedTarget:
    """One ``SYNMON_ALLOWED_TARGETS`` entry: a network (a single address is a /32 or
    /128) and, optionally, the one port it is open on.

    Written ``10.1.0.0/16``, ``127.0.0.1:8080``, ``10.1.0.0/16:443``, ``fd00::/8``,
    ``[::1]:9000`` or ``[fd00::/8]:443``. Names are not accepted: the guard decides on
    addresses, and a name resolved at start would go stale.
    """

    network: IPNetwork
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> AllowedTarget:
        """The entry ``text`` stands for; ``ValueError`` saying why not."""
        entry = text.strip()
        host, port_text = entry, None
        if entry.startswith("["):
            host, closed, rest = entry[1:].partition("]")
            if not closed or (rest and not rest.startswith(":")):
                raise ValueError(f"{text!r}: expected [IPv6] or [IPv6]:PORT")
            port_text = rest[1:] if rest else None
        elif entry.count(":") == 1:  # IPv4 with a port; IPv6 needs brackets for one
            host, port_text = entry.split(":")
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an IP address or network (CIDR), optionally with :PORT; "
                "names are not accepted"
            ) from None
        port = None
        if port_text is not None:
            if (
                not (port_text.isascii() and port_text.isdigit())
                or not 1 <= int(port_text) <= 65535
            ):
                raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
            port = int(port_text)
        return cls(network, port)

    def admits(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int | None
    ) -> bool:
        return address in self.network and (self.port is None or self.port == port)

    @property
    def single_address(self) -> IPAddress | None:
        """The address this entry names, if it names exactly one."""
        return self.network.network_address if self.network.num_addresses == 1 else None

    def __str__(self) -> str:
        single = self.single_address
        host = str(single) if single is not None else str(self.network)
        if self.port is None:
            return host
        return f"[{host}]:{self.port}" if self.network.version == 6 else f"{host}:{self.port}"


def parse_allowed_targets(raw: str) -> tuple[AllowedTarget, ...]:
    """``SYNMON_ALLOWED_TARGETS`` (comma-separated entries) parsed; ``ConfigError`` if not."""
    entries = []
    for part in _as_list(raw):
        try:
            entries.append(AllowedTarget.parse(part))
        except ValueError as exc:
            raise ConfigError(f"SYNMON_ALLOWED_TARGETS: {exc}") from None
    return tuple(entries)


@dataclass(frozen=True)
class Settings:
    env: Environment = "dev"
    release: str = ""
    data_dir: Path = Path(".synmon")
    database_url: str = ""
    # SQS: unset endpoint means AWS itself.
    sqs_endpoint: str | None = None
    sqs_region: str = "us-east-1"
    sqs_queue_prefix: str = "synmon"
    # A URL prefix for queues; "{region}" in it stands for each queue's region.
    sqs_queue_url_prefix: str | None = None
    # Run queues in the AWS region named by their location (one Terraform module per
    # region); results and dispatch queues in sqs_region. Off: every queue in sqs_region.
    sqs_regional_queues: bool = False
    sqs_wait_time_seconds: int = 1
    sqs_polling_interval: float = 0.1
    # Seconds without any answer from SQS after which a worker or ingest reports
    # "sqs-unreachable" to ``synmon health``: long polls answer within seconds.
    sqs_silence: float = 30.0
    sqs_max_receive_count: int = 3
    # Seconds added to the longest check a queue serves to make its visibility timeout.
    sqs_visibility_margin: int = 15
    locations: tuple[str, ...] = ("local",)
    events_url: str | None = None
    allow_private_targets: bool = False
    allowed_targets: tuple[AllowedTarget, ...] = ()
    message_version: int = CURRENT_MESSAGE_VERSION
    artifacts_url: str = ""
    s3_endpoint: str | None = None
    # Checks
    # The shortest frequency a check may have. 10 s, as Checkly; lower for tests.
    min_frequency: float = 10.0
    http_max_timeout: float = 30.0
    browser_max_timeout: float = 240.0
    max_response_bytes: int = 1024 * 1024
    # Extra CA certificates (PEM) that TLS verification trusts, for private services.
    ca_bundle: str | None = None
    response_excerpt_bytes: int = 2048
    chromium_path: str = "/usr/bin/chromium"
    browser_recycle_after: int = 100
    # Workers
    http_concurrency: int = 4
    browser_concurrency: int = 2
    dispatch_interval: float = 0.5
    dispatch_batch_size: int = 1000
    ingest_batch_size: int = 500
    # Operations
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555
    flower_basic_auth: str | None = None
    flower_auth_disabled: bool = False
    web_address: str = "127.0.0.1"
    web_port: int = 8080
    metrics_port: int | None = None
    # Shared folder for the metrics of several processes on one machine (synmon up).
    metrics_dir: Path | None = None
    smtp_url: str = "smtp://127.0.0.1:25"
    email_from: str = "synmon@localhost"
    # Values for {{NAME}} placeholders. From SYNMON_VAR_NAME: secrets, redacted from every
    # result and log line. From SYNMON_PUBLIC_VAR_NAME: plain values, shown as they are.
    variables: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    public_variables: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


# Per-environment defaults, applied before the environment variables.
_ENVIRONMENT_DEFAULTS: dict[Environment, dict[str, object]] = {
    "dev": {"log_format": "text", "allow_private_targets": False},
    "test": {"log_format": "json"},
    "prod": {"log_format": "json", "log_level": "INFO"},
}


def _as_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r}: expected true or false")


def _as_int(name: str, raw: str, minimum: int, maximum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value}: must be between {minimum} and {maximum}")
    return value


def _as_float(name: str, raw: str, minimum: float, maximum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value}: must be between {minimum} and {maximum}")
    return value


def _as_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _as_url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in schemes:
        raise ConfigError(f"{name}={raw!r}: expected a URL starting with one of {schemes}")
    return raw


def _database_url(raw: str) -> str:
    url = _as_url("SYNMON_DATABASE_URL", raw, ("sqlite", "postgresql", "postgresql+psycopg2"))
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def _package_version() -> str:
    """The installed package's version, the default release name (config/ never imports
    app/, so it asks the package metadata rather than ``app.__version__``)."""
    try:
        return metadata.version("synmon")
    except metadata.PackageNotFoundError:
        return "unknown"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``environ`` (default: the process environment).

    Raises ``ConfigError`` naming the variable at fault.
    """
    env_vars = dict(os.environ if environ is None else environ)
    get = env_vars.get

    env_name = get("SYNMON_ENV", "dev")
    if env_name not in ENVIRONMENTS:
        raise ConfigError(f"SYNMON_ENV={env_name!r}: expected one of {', '.join(ENVIRONMENTS)}")
    values: dict[str, object] = {"env": env_name, **_ENVIRONMENT_DEFAULTS[env_name]}

    data_dir = Path(get("SYNMON_DATA_DIR", ".synmon"))
    values["data_dir"] = data_dir
    values["database_url"] = _database_url(
        get("SYNMON_DATABASE_URL", f"sqlite:///{data_dir / 'synmon.db'}")
    )
    artifacts_url = get("SYNMON_ARTIFACTS_URL", f"file://{data_dir / 'artifacts'}")
    if not artifacts_url.startswith(("file://", "s3://")):
        raise ConfigError(
            f"SYNMON_ARTIFACTS_URL={artifacts_url!r}: expected file://PATH or s3://BUCKET/PREFIX"
        )
    values["artifacts_url"] = artifacts_url

    values["release"] = get("SYNMON_RELEASE") or _package_version()

    strings = {
        "SYNMON_SQS_REGION": "sqs_region",
        "SYNMON_SQS_QUEUE_PREFIX": "sqs_queue_prefix",
        "SYNMON_CHROMIUM_PATH": "chromium_path",
        "SYNMON_FLOWER_ADDRESS": "flower_address",
        "SYNMON_WEB_ADDRESS": "web_address",
        "SYNMON_EMAIL_FROM": "email_from",
    }
    for var, attr in strings.items():
        if var in env_vars:
            values[attr] = env_vars[var]

    if get("SYNMON_SQS_ENDPOINT"):
        values["sqs_endpoint"] = _as_url(
            "SYNMON_SQS_ENDPOINT", env_vars["SYNMON_SQS_ENDPOINT"], ("http", "https")
        )
    if get("SYNMON_SQS_QUEUE_URL_PREFIX"):
        values["sqs_queue_url_prefix"] = (
            _as_url(
                "SYNMON_SQS_QUEUE_URL_PREFIX",
                env_vars["SYNMON_SQS_QUEUE_URL_PREFIX"],
                ("http", "https"),
            ).rstrip("/")
            + "/"
        )
    if get("SYNMON_S3_ENDPOINT"):
        values["s3_endpoint"] = _as_url(
            "SYNMON_S3_ENDPOINT", env_vars["SYNMON_S3_ENDPOINT"], ("http", "https")
        )
    if get("SYNMON_METRICS_DIR"):
        values["metrics_dir"] = Path(env_vars["SYNMON_METRICS_DIR"])
    if get("SYNMON_CA_BUNDLE"):
        bundle = env_vars["SYNMON_CA_BUNDLE"]
        if not Path(bundle).is_file():
            raise ConfigError(f"SYNMON_CA_BUNDLE={bundle!r}: no such file")
        values["ca_bundle"] = bundle
    if get("SYNMON_EVENTS_URL"):
        values["events_url"] = _as_url(
            "SYNMON_EVENTS_URL", env_vars["SYNMON_EVENTS_URL"], ("redis", "rediss", "filesystem")
        )
    if get("SYNMON_SMTP_URL"):
        values["smtp_url"] = _as_url(
            "SYNMON_SMTP_URL", env_vars["SYNMON_SMTP_URL"], ("smtp", "smtps")
        )
    if get("SYNMON_FLOWER_BASIC_AUTH"):
        auth = env_vars["SYNMON_FLOWER_BASIC_AUTH"]
        if ":" not in auth:
            raise ConfigError("SYNMON_FLOWER_BASIC_AUTH: expected USER:PASSWORD")
        values["flower_basic_auth"] = auth

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", str(values.get("sqs_queue_prefix", "synmon"))):
        raise ConfigError("SYNMON_SQS_QUEUE_PREFIX: lower-case letters, digits and '-' only")

    if "SYNMON_LOCATIONS" in env_vars:
        locations = _as_list(env_vars["SYNMON_LOCATIONS"])
        if not locations:
            raise ConfigError("SYNMON_LOCATIONS: name at least one location")
        for location in locations:
            if not _LOCATION_RE.match(location):
                raise ConfigError(
                    f"SYNMON_LOCATIONS: {location!r} is not a valid location "
                    "(lower-case letters, digits and '-', as in eu-west-1)"
                )
        values["locations"] = locations
    if "SYNMON_ALLOWED_TARGETS" in env_vars:
        values["allowed_targets"] = parse_allowed_targets(env_vars["SYNMON_ALLOWED_TARGETS"])

    booleans = {
        "SYNMON_ALLOW_PRIVATE_TARGETS": "allow_private_targets",
        "SYNMON_FLOWER_AUTH_DISABLED": "flower_auth_disabled",
        "SYNMON_SQS_REGIONAL_QUEUES": "sqs_regional_queues",
    }
    for var, attr in booleans.items():
        if var in env_vars:
            values[attr] = _as_bool(var, env_vars[var])

    integers = {
        "SYNMON_SQS_WAIT_TIME_SECONDS": ("sqs_wait_time_seconds", 0, 20),
        "SYNMON_SQS_MAX_RECEIVE_COUNT": ("sqs_max_receive_count", 1, 1000),
        "SYNMON_SQS_VISIBILITY_MARGIN": ("sqs_visibility_margin", 1, 3600),
        "SYNMON_MESSAGE_VERSION": ("message_version", 1, CURRENT_MESSAGE_VERSION),
        "SYNMON_MAX_RESPONSE_BYTES": ("max_response_bytes", 1024, 64 * 1024 * 1024),
        "SYNMON_RESPONSE_EXCERPT_BYTES": ("response_excerpt_bytes", 0, 64 * 1024),
        "SYNMON_BROWSER_RECYCLE_AFTER": ("browser_recycle_after", 1, 1_000_000),
        "SYNMON_HTTP_CONCURRENCY": ("http_concurrency", 1, 512),
        "SYNMON_BROWSER_CONCURRENCY": ("browser_concurrency", 1, 64),
        "SYNMON_DISPATCH_BATCH_SIZE": ("dispatch_batch_size", 1, 100_000),
        "SYNMON_INGEST_BATCH_SIZE": ("ingest_batch_size", 1, 10_000),
        "SYNMON_FLOWER_PORT": ("flower_port", 1, 65535),
        "SYNMON_WEB_PORT": ("web_port", 0, 65535),
        "SYNMON_METRICS_PORT": ("metrics_port", 0, 65535),
    }
    for var, (attr, low, high) in integers.items():
        if var in env_vars:
            values[attr] = _as_int(var, env_vars[var], low, high)

    floats = {
        "SYNMON_SQS_POLLING_INTERVAL": ("sqs_polling_interval", 0.0, 60.0),
        "SYNMON_SQS_SILENCE": ("sqs_silence", 1.0, 3600.0),
        "SYNMON_HTTP_MAX_TIMEOUT": ("http_max_timeout", 1.0, 900.0),
        "SYNMON_BROWSER_MAX_TIMEOUT": ("browser_max_timeout", 1.0, 900.0),
        "SYNMON_DISPATCH_INTERVAL": ("dispatch_interval", 0.1, 60.0),
        "SYNMON_MIN_FREQUENCY": ("min_frequency", 1.0, 3600.0),
    }
    for var, (attr, lowf, highf) in floats.items():
        if var in env_vars:
            values[attr] = _as_float(var, env_vars[var], lowf, highf)

    level = get("SYNMON_LOG_LEVEL")
    if level is not None:
        if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"SYNMON_LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING or ERROR")
        values["log_level"] = level.upper()
    log_format = get("SYNMON_LOG_FORMAT")
    if log_format is not None:
        if log_format not in ("json", "text"):
            raise ConfigError(f"SYNMON_LOG_FORMAT={log_format!r}: expected json or text")
        values["log_format"] = log_format

    if values.get("sqs_regional_queues") and get("SYNMON_SQS_ENDPOINT"):
        raise ConfigError("SYNMON_SQS_REGIONAL_QUEUES: a single endpoint has a single region")
    if values["env"] == "prod" and str(values["database_url"]).startswith("sqlite"):
        raise ConfigError("SYNMON_DATABASE_URL: SYNMON_ENV=prod needs Postgres, not SQLite")

    values["variables"] = {
        name[len(SECRET_PREFIX) :]: value
        for name, value in env_vars.items()
        if name.startswith(SECRET_PREFIX) and len(name) > len(SECRET_PREFIX)
    }
    values["public_variables"] = {
        name[len(PUBLIC_PREFIX) :]: value
        for name, value in env_vars.items()
        if name.startswith(PUBLIC_PREFIX) and len(name) > len(PUBLIC_PREFIX)
    }
    both = set(values["variables"]) & set(values["public_variables"])  # type: ignore[call-overload]
    if both:
        raise ConfigError(
            f"{SECRET_PREFIX}{min(both)} and {PUBLIC_PREFIX}{min(both)} are both set: "
            "a placeholder is either secret or public"
        )
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


_cached: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    global _cached  # noqa: PLW0603 - one lazily loaded value per process is the point
    if _cached is None:
        _cached = load_settings()
    return _cached


def reset_settings() -> None:
    """Forget the cached settings (tests and ``synmon up`` change the environment)."""
    global _cached  # noqa: PLW0603
    _cached = None
