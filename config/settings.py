"""Every setting synmon has, each declared once, read from ``SYNMON_*`` environment variables.

This module is the only place that reads the environment. Everything else receives a
``Settings`` object, so a test or a subprocess changes behaviour by changing the
environment it passes, never by patching modules.

A setting is one field of ``Settings``, declared with ``setting(...)``: its variable, its
type (the annotation), its default, its bounds and one line of doc. ``load_settings``
reads every field the same way from that declaration, and ``settings_table()`` (``python
-m config.settings --markdown-table``) renders the README's configuration table from it,
so that the three cannot drift apart.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import (
    Any,
    Literal,
    NamedTuple,
    Protocol,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)

from config.errors import SynmonError

Environment = Literal["dev", "test", "prod"]
ENVIRONMENTS: tuple[Environment, ...] = ("dev", "test", "prod")

# Message versions this release can read. Producers write ``message_version``.
CURRENT_MESSAGE_VERSION = 2
SUPPORTED_MESSAGE_VERSIONS = (1, 2)

SECRET_PREFIX = "SYNMON_VAR_"  # noqa: S105 - a variable name prefix, not a password
PUBLIC_PREFIX = "SYNMON_PUBLIC_VAR_"
_LOCATION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_QUEUE_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

T = TypeVar("T")


class ConfigError(SynmonError):
    """A setting has a value synmon cannot use; the message names the variable.

    Not a ``ValueError``: the check models read the settings inside their validators,
    and pydantic would turn a ``ValueError`` into a problem of the check's field.
    """


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


# ---------------------------------------------------------------- parsers
# Each turns a variable's text into its value or raises ValueError saying why not (the
# loader puts the variable's name before it), and says what it accepts for the README.


class Parser(Protocol):
    @property
    def accepts(self) -> str:
        """What the README's table says the variable accepts."""
        ...

    def __call__(self, raw: str, /) -> object: ...


def _either(words: Iterable[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    items = list(words)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


@dataclass(frozen=True)
class Flag:
    accepts: str = "`true` or `false`"

    def __call__(self, raw: str) -> bool:
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"expected true or false, not {raw!r}")


@dataclass(frozen=True)
class Number:
    kind: type[int] | type[float]
    low: float
    high: float

    @property
    def accepts(self) -> str:
        return (
            f"{self.low:g} to {self.high:g}" if self.kind is float else f"{self.low} to {self.high}"
        )

    def __call__(self, raw: str) -> float:
        what = "a whole number" if self.kind is int else "a number"
        try:
            value = self.kind(raw)
        except ValueError:
            value = None
        # ``not low <= value <= high`` also refuses NaN.
        if value is None or not self.low <= value <= self.high:
            raise ValueError(f"expected {what} from {self.accepts}, not {raw!r}")
        return value


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]
    upper: bool = False  # accepted in any case, kept upper-case (log levels)

    @property
    def accepts(self) -> str:
        return _either(f"`{choice}`" for choice in self.choices)

    def __call__(self, raw: str) -> str:
        value = raw.upper() if self.upper else raw
        if value not in self.choices:
            raise ValueError(f"expected {_either(self.choices)}, not {raw!r}")
        return value


@dataclass(frozen=True)
class Text:
    kind: Callable[[str], object] = str
    accepts: str = "text"

    def __call__(self, raw: str) -> object:
        return self.kind(raw)


@dataclass(frozen=True)
class Url:
    schemes: tuple[str, ...]
    # A prefix that names are appended to: written back with exactly one trailing "/".
    prefix: bool = False

    @property
    def accepts(self) -> str:
        return _either(f"`{scheme}://`" for scheme in self.schemes) + " URL"

    def __call__(self, raw: str) -> str:
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme not in self.schemes:
            # The scheme only: the rest of a URL may hold a password.
            got = f"{scheme}://" if scheme else "one without a scheme"
            raise ValueError(
                f"expected a URL starting with {_either(s + '://' for s in self.schemes)}, "
                f"not {got}"
            )
        return raw.rstrip("/") + "/" if self.prefix else raw


@dataclass(frozen=True)
class Rule:
    """The parser of one setting with rules of its own."""

    accepts: str
    parse: Callable[[str], object]

    def __call__(self, raw: str) -> object:
        return self.parse(raw)


def _as_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _locations(raw: str) -> tuple[str, ...]:
    locations = _as_list(raw)
    if not locations:
        raise ValueError("name at least one location")
    for location in locations:
        if not _LOCATION_RE.match(location):
            raise ValueError(
                f"{location!r} is not a valid location "
                "(lower-case letters, digits and '-', as in eu-west-1)"
            )
    return locations


def _allowed_targets(raw: str) -> tuple[AllowedTarget, ...]:
    return tuple(AllowedTarget.parse(part) for part in _as_list(raw))


def _queue_prefix(raw: str) -> str:
    if not _QUEUE_PREFIX_RE.fullmatch(raw):
        raise ValueError(f"{raw!r}: lower-case letters, digits and '-' only, at most 31")
    return raw


_DATABASE_SCHEMES = Url(("sqlite", "postgresql", "postgresql+psycopg2"))


def _database_url(raw: str) -> str:
    url = _DATABASE_SCHEMES(raw)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def _existing_file(raw: str) -> str:
    if not Path(raw).is_file():
        raise ValueError(f"{raw!r}: no such file")
    return raw


def _user_password(raw: str) -> str:
    if ":" not in raw:
        raise ValueError("expected USER:PASSWORD")  # not echoed: it is a password
    return raw


_RETENTION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|d|w|y)?\s*$")
_SPAN_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_RETENTION_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
# A year of retention is 365 days: keeping a day more in a leap year matters to no one.
_RETENTION_UNITS["y"] = timedelta(days=365)


def _retention(raw: str) -> timedelta:
    """How long something is kept: ``12h``, ``30d``, ``8w``, ``2y``, or days as a number.

    No minutes: ``6m`` would read as six months to many, and keep six minutes."""
    match = _RETENTION_RE.match(raw)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"expected a duration such as 12h, 30d, 8w or 2y, not {raw!r}")
    return float(match.group(1)) * _RETENTION_UNITS[match.group(2) or "d"]


def _span(raw: str) -> timedelta:
    """A short length of time, its unit required: ``90s``, ``15m``, ``12h``, ``7d``."""
    match = _SPAN_RE.match(raw)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"expected a duration such as 90s, 15m, 12h or 7d, not {raw!r}")
    return float(match.group(1)) * _RETENTION_UNITS[match.group(2)]


_RETENTION = Rule(
    "a duration: `12h`, `30d`, `8w`, `2y` (365 days), or a number of days", _retention
)
_SPAN = Rule("a duration with its unit: `90s`, `15m`, `12h`, `7d`", _span)


def _package_version() -> str:
    """The installed package's version, the default release name (config/ never imports
    app/, so it asks the package metadata rather than ``app.__version__``)."""
    try:
        return metadata.version("synmon")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- declarations

Derived = Callable[[Mapping[str, Any]], object]


@dataclass(frozen=True)
class Setting:
    """How one field of ``Settings`` is read: the metadata ``setting(...)`` attaches."""

    var: str  # the variable; for a mapping, the prefix of a family of variables
    doc: str  # one line, the README's "meaning"
    low: float | None = None  # bounds of a number, inclusive
    high: float | None = None
    parse: Parser | None = None  # when the type's own parser does not do
    blank_unset: bool = False  # an empty value counts as unset
    derive: Derived | None = None  # the default, from the settings declared before
    shown: str = ""  # the default as the README shows it, when derived


def setting(
    var: str,
    default: T,
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    parse: Parser | None = None,
    blank_unset: bool = False,
    derive: Derived | None = None,
    shown: str = "",
    secret: bool = False,
) -> T:
    """Declare one setting: a dataclass field carrying its ``Setting``.

    ``secret`` keeps the value out of ``repr``; a mapping (a family of variables) is
    kept out of the hash, which it could not take part in.
    """
    meta = {"setting": Setting(var, doc, low, high, parse, blank_unset, derive, shown)}
    if isinstance(default, dict):
        # A mutable default needs a factory; the cast says it still stands for ``T``.
        return cast(T, field(default_factory=dict, metadata=meta, repr=not secret, hash=False))
    return field(default=default, metadata=meta, repr=not secret)


def _data_dir_url(scheme: str, name: str) -> Derived:
    return lambda values: f"{scheme}{values['data_dir'] / name}"


@dataclass(frozen=True)
class Settings:
    """Every setting, each declared once with ``setting(variable, default, doc, ...)``;
    the annotation is its type, which picks its parser unless it declares one."""

    env: Environment = setting(  # noqa: RUF009 - setting() returns a field()
        "SYNMON_ENV", "dev", "part of every queue name; `prod` requires Postgres"
    )
    release: str = setting(
        "SYNMON_RELEASE",
        "",
        "the worker version recorded on each result",
        blank_unset=True,
        derive=lambda _: _package_version(),
        shown="the package's version",
    )
    data_dir: Path = setting(  # noqa: RUF009 - setting() returns a field()
        "SYNMON_DATA_DIR", Path(".synmon"), "SQLite file, artifacts, logs of `synmon up`"
    )
    database_url: str = setting(
        "SYNMON_DATABASE_URL",
        "",
        "the database; Postgres in production",
        parse=Rule(_DATABASE_SCHEMES.accepts, _database_url),
        derive=_data_dir_url("sqlite:///", "synmon.db"),
        shown="`sqlite:///$SYNMON_DATA_DIR/synmon.db`",
    )
    sqs_endpoint: str | None = setting(
        "SYNMON_SQS_ENDPOINT",
        None,
        "an SQS-compatible endpoint, e.g. `http://127.0.0.1:4566`; unset: AWS itself",
        parse=Url(("http", "https")),
        blank_unset=True,
    )
    sqs_region: str = setting(
        "SYNMON_SQS_REGION",
        "us-east-1",
        "the AWS region of the results and dispatch queues (and of S3)",
    )
    sqs_queue_prefix: str = setting(
        "SYNMON_SQS_QUEUE_PREFIX",
        "synmon",
        "queues are `<prefix>-<env>-run-<location>-<kind>`, `<prefix>-<env>-results`, "
        "`<prefix>-<env>-dispatch`, each with `-dlq`",
        parse=Rule("lower-case letters, digits and `-`, at most 31", _queue_prefix),
    )
    sqs_queue_url_prefix: str | None = setting(
        "SYNMON_SQS_QUEUE_URL_PREFIX",
        None,
        "queue URLs without asking SQS (production); `{region}` stands for each queue's region",
        parse=Url(("http", "https"), prefix=True),
        blank_unset=True,
    )
    sqs_regional_queues: bool = setting(
        "SYNMON_SQS_REGIONAL_QUEUES",
        False,
        "run queues live in the AWS region named by their location (the Terraform sets it); "
        "the others in `SYNMON_SQS_REGION`",
    )
    sqs_wait_time_seconds: int = setting(
        "SYNMON_SQS_WAIT_TIME_SECONDS",
        1,
        "seconds a receive waits for a message (long polling suited to checks)",
        low=0,
        high=20,
    )
    sqs_polling_interval: float = setting(
        "SYNMON_SQS_POLLING_INTERVAL",
        0.1,
        "seconds between two receives from an empty queue",
        low=0.0,
        high=60.0,
    )
    sqs_silence: float = setting(
        "SYNMON_SQS_SILENCE",
        30.0,
        "seconds without an answer from SQS after which a worker or ingest reports itself "
        "not ready to `synmon health`",
        low=1.0,
        high=3600.0,
    )
    sqs_max_receive_count: int = setting(
        "SYNMON_SQS_MAX_RECEIVE_COUNT",
        3,
        "deliveries before a message goes to its queue's DLQ (results: at least 5)",
        low=1,
        high=1000,
    )
    sqs_visibility_margin: int = setting(
        "SYNMON_SQS_VISIBILITY_MARGIN",
        15,
        "seconds added to the longest check a queue serves to make its visibility timeout",
        low=1,
        high=3600,
    )
    locations: tuple[str, ...] = setting(
        "SYNMON_LOCATIONS",
        ("local",),
        "the locations this installation runs, e.g. `eu-west-1,us-east-1`",
        parse=Rule("comma-separated names: lower-case letters, digits and `-`", _locations),
    )
    events_url: str | None = setting(
        "SYNMON_EVENTS_URL",
        None,
        "side channel for Celery events and Flower, e.g. `redis://...` or `filesystem:///folder`",
        parse=Url(("redis", "rediss", "filesystem")),
        blank_unset=True,
    )
    allow_private_targets: bool = setting(
        "SYNMON_ALLOW_PRIVATE_TARGETS",
        False,
        "let checks reach private, loopback and link-local addresses (never metadata)",
    )
    allowed_targets: tuple[AllowedTarget, ...] = setting(
        "SYNMON_ALLOWED_TARGETS",
        (),
        "addresses checks may reach anyway; names are refused; a metadata address opens "
        "only when an entry names it",
        parse=Rule(
            "comma-separated IP, CIDR, `IP:PORT`, `CIDR:PORT` or `[IPv6]:PORT` entries",
            _allowed_targets,
        ),
    )
    message_version: int = setting(
        "SYNMON_MESSAGE_VERSION",
        CURRENT_MESSAGE_VERSION,
        "the message version producers write (consumers read it and the one before)",
        low=min(SUPPORTED_MESSAGE_VERSIONS),
        high=CURRENT_MESSAGE_VERSION,
    )
    artifacts_url: str = setting(
        "SYNMON_ARTIFACTS_URL",
        "",
        "where screenshots are stored (`SYNMON_S3_ENDPOINT` for S3-compatible stores)",
        parse=Rule("`file://PATH` or `s3://BUCKET/PREFIX`", Url(("file", "s3"))),
        derive=_data_dir_url("file://", "artifacts"),
        shown="`file://$SYNMON_DATA_DIR/artifacts`",
    )
    s3_endpoint: str | None = setting(
        "SYNMON_S3_ENDPOINT",
        None,
        "an S3-compatible endpoint for `s3://` artifacts; unset: AWS itself",
        parse=Url(("http", "https")),
        blank_unset=True,
    )
    # Checks
    min_frequency: float = setting(
        "SYNMON_MIN_FREQUENCY",
        10.0,
        "shortest check frequency, in seconds, that `synmon sync` accepts (10 s, as Checkly)",
        low=1.0,
        high=3600.0,
    )
    http_max_timeout: float = setting(
        "SYNMON_HTTP_MAX_TIMEOUT",
        30.0,
        "longest timeout, in seconds, an HTTP check may have",
        low=1.0,
        high=900.0,
    )
    browser_max_timeout: float = setting(
        "SYNMON_BROWSER_MAX_TIMEOUT",
        240.0,
        "longest timeout, in seconds, a browser check may have",
        low=1.0,
        high=900.0,
    )
    max_response_bytes: int = setting(
        "SYNMON_MAX_RESPONSE_BYTES",
        1024 * 1024,
        "bytes of a response body read for assertions",
        low=1024,
        high=64 * 1024 * 1024,
    )
    ca_bundle: str | None = setting(
        "SYNMON_CA_BUNDLE",
        None,
        "extra CA certificates that TLS verification trusts, for private services",
        parse=Rule("an existing PEM file", _existing_file),
        blank_unset=True,
    )
    response_excerpt_bytes: int = setting(
        "SYNMON_RESPONSE_EXCERPT_BYTES",
        2048,
        "bytes of the response body stored with a result",
        low=0,
        high=64 * 1024,
    )
    chromium_path: str = setting(
        "SYNMON_CHROMIUM_PATH",
        "/usr/bin/chromium",
        "the Chromium browser workers launch; `synmon up` also looks for `chromium` on PATH "
        "when this is unset",
    )
    browser_recycle_after: int = setting(
        "SYNMON_BROWSER_RECYCLE_AFTER",
        100,
        "runs before a Chromium is replaced",
        low=1,
        high=1_000_000,
    )
    # Workers
    http_pool: Literal["threads", "prefork"] = setting(
        "SYNMON_HTTP_POOL",
        "threads",
        "Celery pool of an HTTP worker: `threads` keeps many checks in flight in one process "
        "(checks wait on their targets); `prefork` runs one check per process (set "
        "`SYNMON_HTTP_CONCURRENCY` to a few per core with it: each process holds its own "
        "copy of the worker)",
    )
    http_concurrency: int = setting(
        "SYNMON_HTTP_CONCURRENCY",
        100,
        "checks in flight per HTTP worker: threads, or processes with prefork. 100 threads "
        "run more checks against targets answering in 200 ms than a worker's core can take, "
        "and 100 a second against 1 s targets; 200 inflated the response times checks "
        "report (p95 +190% at 200 ms). A worker takes from SQS only what its free slots can "
        "start",
        low=1,
        high=512,
        # A process per slot with prefork: a hundred copies of the worker is not a default.
        derive=lambda values: 100 if values["http_pool"] == "threads" else 4,
        shown="`100` with `threads`, `4` with `prefork`",
    )
    browser_concurrency: int = setting(
        "SYNMON_BROWSER_CONCURRENCY",
        4,
        "checks in flight per browser worker: incognito contexts of its one Chromium, each "
        "run by a thread of Celery's `threads` pool",
        low=1,
        high=64,
    )
    dispatch_interval: float = setting(
        "SYNMON_DISPATCH_INTERVAL", 0.5, "seconds between two dispatcher ticks", low=0.1, high=60.0
    )
    dispatch_batch_size: int = setting(
        "SYNMON_DISPATCH_BATCH_SIZE",
        1000,
        "checks per dispatcher transaction",
        low=1,
        high=100_000,
    )
    ingest_batch_size: int = setting(
        "SYNMON_INGEST_BATCH_SIZE", 500, "results per ingest transaction", low=1, high=10_000
    )
    # Retention: what the periodic prune (and `synmon prune`) removes.
    runs_retention: timedelta = setting(  # noqa: RUF009 - setting() returns a field()
        "SYNMON_RUNS_RETENTION",
        timedelta(days=30),
        "how long raw runs (and their artifacts) are kept, by the time they were scheduled",
        parse=_RETENTION,
        shown="`30d`",
    )
    hourly_rollups_retention: timedelta = setting(  # noqa: RUF009 - setting() returns a field()
        "SYNMON_HOURLY_ROLLUPS_RETENTION",
        timedelta(days=90),
        "how long hourly rollups are kept (a day's hours go only once that day is over)",
        parse=_RETENTION,
        shown="`90d`",
    )
    daily_rollups_retention: timedelta = setting(  # noqa: RUF009 - setting() returns a field()
        "SYNMON_DAILY_ROLLUPS_RETENTION",
        timedelta(days=730),
        "how long daily rollups are kept",
        parse=_RETENTION,
        shown="`2y`",
    )
    prune_batch_size: int = setting(
        "SYNMON_PRUNE_BATCH_SIZE",
        5000,
        "rows per prune transaction: each is short, so ingest never waits long",
        low=1,
        high=100_000,
    )
    # Operations
    log_level: str = setting(
        "SYNMON_LOG_LEVEL",
        "INFO",
        "the lowest level logged (in any case)",
        parse=OneOf(LOG_LEVELS, upper=True),
    )
    log_format: Literal["json", "text"] = setting(
        "SYNMON_LOG_FORMAT",
        "json",
        "log lines as JSON objects or as text",
        derive=lambda values: "text" if values["env"] == "dev" else "json",
        shown="`text` in dev, `json` otherwise",
    )
    flower_address: str = setting(
        "SYNMON_FLOWER_ADDRESS", "127.0.0.1", "the address Flower listens on"
    )
    flower_port: int = setting(
        "SYNMON_FLOWER_PORT", 5555, "the port Flower listens on", low=1, high=65535
    )
    flower_basic_auth: str | None = setting(
        "SYNMON_FLOWER_BASIC_AUTH",
        None,
        "Flower's login; `synmon flower` refuses to start without one unless "
        "`SYNMON_FLOWER_AUTH_DISABLED`",
        parse=Rule("`USER:PASSWORD`", _user_password),
        blank_unset=True,
        secret=True,
    )
    flower_auth_disabled: bool = setting(
        "SYNMON_FLOWER_AUTH_DISABLED", False, "run Flower without a login (a trusted network)"
    )
    web_address: str = setting(
        "SYNMON_WEB_ADDRESS", "127.0.0.1", "the address the web product listens on"
    )
    web_port: int = setting(
        "SYNMON_WEB_PORT", 8080, "the port the web product listens on", low=0, high=65535
    )
    web_public_url: str = setting(
        "SYNMON_WEB_PUBLIC_URL",
        "",
        "the address people reach the web product at (links in notifications, heartbeat "
        "URLs, badges); its scheme decides whether session cookies are `Secure`",
        parse=Url(("http", "https")),
        blank_unset=True,
        derive=lambda values: f"http://{values['web_address']}:{values['web_port']}",
        shown="`http://ADDRESS:PORT`",
    )
    web_workers: int = setting(
        "SYNMON_WEB_WORKERS", 1, "uvicorn worker processes of `synmon web`", low=1, high=64
    )
    web_secure_cookies: bool = setting(
        "SYNMON_WEB_SECURE_COOKIES",
        False,
        "mark session cookies `Secure` (sent over HTTPS only)",
        derive=lambda values: str(values["web_public_url"]).startswith("https://"),
        shown="on when `SYNMON_WEB_PUBLIC_URL` is `https://`",
    )
    web_session_lifetime: timedelta = setting(  # noqa: RUF009 - setting() returns a field()
        "SYNMON_WEB_SESSION_LIFETIME",
        timedelta(hours=12),
        "how long a sign-in lasts",
        parse=_SPAN,
        shown="`12h`",
    )
    web_login_attempts: int = setting(
        "SYNMON_WEB_LOGIN_ATTEMPTS",
        5,
        "failed sign-ins in a row after which a user is locked out for `SYNMON_WEB_LOCKOUT`",
        low=1,
        high=1000,
    )
    web_lockout: timedelta = setting(  # noqa: RUF009 - setting() returns a field()
        "SYNMON_WEB_LOCKOUT",
        timedelta(minutes=15),
        "how long a user stays locked out after too many failed sign-ins",
        parse=_SPAN,
        shown="`15m`",
    )
    metrics_token: str | None = setting(
        "SYNMON_METRICS_TOKEN",
        None,
        "a bearer token `/metrics` of the web product asks for; unset, `/metrics` is open",
        blank_unset=True,
        secret=True,
    )
    metrics_port: int | None = setting(
        "SYNMON_METRICS_PORT",
        None,
        "the port ingest and the dispatcher expose their metrics on",
        low=0,
        high=65535,
    )
    metrics_dir: Path | None = setting(  # noqa: RUF009 - setting() returns a field()
        "SYNMON_METRICS_DIR",
        None,
        "a folder shared by the metrics of several processes on one machine (`synmon up`)",
        blank_unset=True,
    )
    smtp_url: str = setting(
        "SYNMON_SMTP_URL",
        "smtp://127.0.0.1:25",
        "the mail server of the email channel",
        parse=Url(("smtp", "smtps")),
        blank_unset=True,
    )
    email_from: str = setting(
        "SYNMON_EMAIL_FROM", "synmon@localhost", "the sender of the email channel's messages"
    )
    # Values for {{NAME}} placeholders: the secret ones are redacted from every result and
    # log line, the public ones shown as they are.
    variables: Mapping[str, str] = setting(
        SECRET_PREFIX,
        {},
        "the value of the `{{NAME}}` placeholder, a secret: redacted from results and logs",
        secret=True,
    )
    public_variables: Mapping[str, str] = setting(
        PUBLIC_PREFIX,
        {},
        "the value of the `{{NAME}}` placeholder, shown as it is",
    )

    @property
    def sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


class Declared(NamedTuple):
    """One setting as the loader and the table use it, with its parser resolved."""

    attr: str
    setting: Setting
    parser: Parser | None  # None: a family of variables (a mapping)
    default: object


def _parser(hint: Any, spec: Setting) -> Parser | None:
    """The declared parser, or the one the field's type picks; None for a family."""
    if get_origin(hint) in (Union, types.UnionType):  # ``X | None``: None is the default
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
    if spec.parse is not None:
        return spec.parse
    if get_origin(hint) is Mapping:
        return None
    if get_origin(hint) is Literal:
        return OneOf(get_args(hint))
    if hint is bool:
        return Flag()
    if hint in (int, float):
        if spec.low is None or spec.high is None:
            raise TypeError(f"{spec.var}: a number needs its bounds (low=, high=)")
        return Number(hint, spec.low, spec.high)
    if hint is Path:
        return Text(Path, "a path")
    if hint is str:
        return Text()
    raise TypeError(f"{spec.var}: no parser for {hint}; declare one (parse=)")


def _declared() -> tuple[Declared, ...]:
    hints = get_type_hints(Settings)
    declared = []
    for item in fields(Settings):
        spec: Setting = item.metadata["setting"]
        if spec.derive is not None and not spec.shown:
            raise TypeError(f"{spec.var}: a derived default needs its README text (shown=)")
        default = item.default if item.default is not MISSING else {}
        declared.append(Declared(item.name, spec, _parser(hints[item.name], spec), default))
    return tuple(declared)


DECLARED = _declared()
_VARIABLES = {item.attr: item.setting.var for item in DECLARED}


def variable(attr: str) -> str:
    """The variable that sets ``attr``: ``variable("locations") == "SYNMON_LOCATIONS"``."""
    return _VARIABLES[attr]


# ---------------------------------------------------------------- loading


def _family(prefix: str, environ: Mapping[str, str]) -> dict[str, str]:
    return {
        name[len(prefix) :]: value
        for name, value in environ.items()
        if name.startswith(prefix) and len(name) > len(prefix)
    }


def _read(item: Declared, environ: Mapping[str, str], values: Mapping[str, Any]) -> object:
    spec = item.setting
    if item.parser is None:
        return _family(spec.var, environ)
    raw = environ.get(spec.var)
    if raw is None or (spec.blank_unset and not raw):
        return spec.derive(values) if spec.derive is not None else item.default
    try:
        return item.parser(raw)
    except ValueError as exc:
        raise ConfigError(f"{spec.var}: {exc}") from None


def _check_together(values: Mapping[str, Any]) -> None:
    """The rules that span settings, each naming the variable to change."""
    if values["sqs_regional_queues"] and values["sqs_endpoint"] is not None:
        raise ConfigError(
            f"{variable('sqs_regional_queues')}: a single endpoint has a single region"
        )
    if values["env"] == "prod" and values["database_url"].startswith("sqlite"):
        raise ConfigError(
            f"{variable('database_url')}: {variable('env')}=prod needs Postgres, not SQLite"
        )
    both = set(values["variables"]) & set(values["public_variables"])
    if both:
        raise ConfigError(
            f"{SECRET_PREFIX}{min(both)} and {PUBLIC_PREFIX}{min(both)} are both set: "
            "a placeholder is either secret or public"
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``environ`` (default: the process environment).

    Raises ``ConfigError`` naming the variable at fault.
    """
    env_vars = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    # In declaration order: a derived default reads the settings declared before it.
    for item in DECLARED:
        values[item.attr] = _read(item, env_vars, values)
    _check_together(values)
    return Settings(**values)


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


# ---------------------------------------------------------------- the README's table


def _shown_default(item: Declared) -> str:
    value = item.default
    if item.setting.shown:
        return item.setting.shown
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, Mapping):
        return "none"
    if isinstance(value, tuple):
        value = ",".join(map(str, value))
    return f"`{value}`" if value != "" else "empty"


def settings_table() -> str:
    """The README's configuration table: one row per setting, from its declaration."""
    rows = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for item in DECLARED:
        name = f"{item.setting.var}<NAME>" if item.parser is None else item.setting.var
        accepts = "text" if item.parser is None else item.parser.accepts
        cells = (f"`{name}`", _shown_default(item), accepts, item.setting.doc)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m config.settings", description="synmon's settings, as declared"
    )
    parser.add_argument(
        "--markdown-table",
        action="store_true",
        required=True,
        help="print the README's configuration table",
    )
    parser.parse_args(argv)
    sys.stdout.write(settings_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
