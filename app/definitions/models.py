"""Check and channel definitions: the YAML format of DESIGN.md, as pydantic models.

Every model forbids unknown fields, so a typo is an error and not a silently ignored
setting. Durations are stored as seconds. The validated model, dumped to JSON, is the
check snapshot that travels in run requests.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from app.definitions.durations import Duration
from app.definitions.jsonpath import as_number, compile_json_path
from app.definitions.patterns import PatternError, compile_pattern
from config.settings import Settings, get_settings

Source = Literal[
    "status_code", "json_body", "headers", "text_body", "response_time", "tls_certificate"
]
Comparison = Literal[
    "equals",
    "not_equals",
    "greater_than",
    "less_than",
    "contains",
    "not_contains",
    "matches",
    "is_empty",
    "not_empty",
    "has_key",
    "not_has_key",
    "is_null",
    "not_null",
]
UNARY_COMPARISONS = frozenset({"is_empty", "not_empty", "is_null", "not_null"})
KEY_COMPARISONS = frozenset({"has_key", "not_has_key"})
ORDER_COMPARISONS = frozenset({"greater_than", "less_than"})
TLS_PROPERTIES = frozenset({"days_until_expiry"})

# Matched whole (``fullmatch``): with ``match``, ``$`` also matches before a final newline.
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# As SYNMON_LOCATIONS spells them; a location becomes part of a queue name and is stored
# in columns of 40 characters (check_runs.location, check_location_state.location).
LOCATION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
# The lengths of the columns these values are stored in (app/storage/models.py).
MAX_NAME_CHARS = 200
MAX_TAG_CHARS = 64
MAX_TAGS = 50
PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# The model's own floor; an installation's (SYNMON_MIN_FREQUENCY, default 10 s) is
# applied by the loader, which knows the settings.
MIN_FREQUENCY = 1.0
MAX_FREQUENCY = 24 * 3600.0

Scalar = str | int | float | bool | None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def check_placeholders(text: str) -> str:
    """Reject a ``{{`` that does not open a well-formed ``{{NAME}}`` placeholder."""
    stripped = PLACEHOLDER_RE.sub("", text)
    if "{{" in stripped or "}}" in stripped:
        raise ValueError("a placeholder is written {{NAME}}, with letters, digits and _")
    return text


def _slug(value: str) -> str:
    if not SLUG_RE.fullmatch(value):
        raise ValueError(
            "an id is 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


Slug = Annotated[str, Field(min_length=1, max_length=64)]

# Characters that break a line or a terminal: C0 and C1 controls, DEL, and Unicode's
# line and paragraph separators.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def control_character(text: str) -> str | None:
    """The first control character in ``text``, if any."""
    return next((c for c in text if unicodedata.category(c) in _CONTROL_CATEGORIES), None)


def one_line(value: str) -> str:
    """A value shown on one line or sent in a header: no control characters."""
    found = control_character(value)
    if found is not None:
        raise ValueError(f"contains the control character {found!r}")
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    for name, item in value.items():
        if not name:
            raise ValueError("a header name is empty")
        try:
            one_line(name)
            one_line(item)
        except ValueError as exc:
            raise ValueError(f"header {name!r}: {exc}") from None
    return value


class Assertion(Strict):
    source: Source
    property: str | None = None
    comparison: Comparison
    target: Scalar = None

    @model_validator(mode="after")
    def _consistent(self) -> Assertion:
        if self.comparison in UNARY_COMPARISONS:
            if self.target is not None:
                raise ValueError(f"{self.comparison} takes no target")
        elif self.comparison in KEY_COMPARISONS:
            if self.source not in ("json_body", "headers"):
                raise ValueError(f"{self.comparison} applies to json_body or headers only")
            if self.target is None:
                raise ValueError(f"{self.comparison} needs a target: the key to look for")
        elif self.target is None:
            raise ValueError(f"{self.comparison} needs a target")
        if self.comparison in ORDER_COMPARISONS and not _is_number(self.target):
            raise ValueError(f"{self.comparison} needs a numeric target")
        if self.comparison == "matches":
            try:
                compile_pattern(str(self.target))
            except PatternError as exc:
                raise ValueError(f"target is {exc}") from None
        if (
            self.source == "headers"
            and not self.property
            and self.comparison not in KEY_COMPARISONS
        ):
            raise ValueError("a headers assertion needs a property: the header name")
        if self.source == "tls_certificate" and self.property not in TLS_PROPERTIES:
            raise ValueError("tls_certificate assertions take property: days_until_expiry")
        if self.source in ("status_code", "response_time", "text_body") and self.property:
            raise ValueError(f"{self.source} assertions take no property")
        if self.source == "json_body" and self.property is not None:
            compile_json_path(self.property)
        return self


def _is_number(value: object) -> bool:
    """The assertion engine's own rule, so that a target it can never compare (``nan``,
    ``inf``, ``1_000``) is refused at load rather than failing every run."""
    return as_number(value) is not None


class BasicAuth(Strict):
    username: str
    password: str

    @field_validator("username", "password")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_placeholders(value)


def _timeout_within(value: float, cap: float) -> float:
    """``value`` if it is a timeout the model accepts, up to ``cap`` seconds.

    The cap is the installation's maximum (SYNMON_HTTP_MAX_TIMEOUT,
    SYNMON_BROWSER_MAX_TIMEOUT) when that is higher than the default one, else the
    default: as with the frequency floor, a lower maximum is the loader's to apply (it
    names the installation's maximum), and a worker configured lower still runs the
    snapshots that an earlier sync accepted.
    """
    if not 0 < value <= cap:
        raise ValueError(f"must be more than 0 and at most {cap:g}s")
    return value


def _capped_by(setting: str) -> AfterValidator:
    def check(value: float) -> float:
        return _timeout_within(
            value, max(getattr(get_settings(), setting), getattr(Settings, setting))
        )

    return AfterValidator(check)


Headers = Annotated[dict[str, str], AfterValidator(_headers)]
HttpTimeout = Annotated[Duration, _capped_by("http_max_timeout")]
BrowserTimeout = Annotated[Duration, _capped_by("browser_max_timeout")]


class Request(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: str
    headers: Headers = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = None
    follow_redirects: bool = True
    timeout: HttpTimeout = 10.0
    basic_auth: BasicAuth | None = None
    skip_tls_verify: bool = False

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_url(value)

    @field_validator("headers", "query")
    @classmethod
    def _mapping_placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        for item in value.values():
            check_placeholders(item)
        return value


def validate_url(value: str) -> str:
    one_line(value)
    check_placeholders(value)
    # Validate the shape with placeholders stood in by a harmless token.
    probe = PLACEHOLDER_RE.sub("x", value)
    if not probe.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    try:
        HttpUrl(probe)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid URL") from None
    return value


class RetryPolicy(Strict):
    strategy: Literal["none", "fixed", "linear", "exponential"] = "none"
    max_retries: int = Field(default=2, ge=0, le=10)
    base_backoff: Duration = 5.0
    max_duration: Duration = 120.0
    same_region: bool = True
    network_only: bool = False

    @field_validator("base_backoff")
    @classmethod
    def _backoff(cls, value: float) -> float:
        # SQS delays a message by at most 15 minutes.
        if value > 900:
            raise ValueError("at most 15m (SQS delays a message by 900 s at most)")
        return value

    @field_validator("max_duration")
    @classmethod
    def _max_duration(cls, value: float) -> float:
        if not 0 < value <= 3600:
            raise ValueError("must be more than 0 and at most 1h")
        return value


class AlertPolicy(Strict):
    after_failures: int = Field(default=1, ge=1, le=100)
    # How many locations must be failing (each after its own after_failures) before the
    # check is failing and alerts; see app/pipeline/state.py.
    min_failing_locations: int = Field(default=1, ge=1, le=100)
    channels: list[Slug] = Field(default_factory=list)
    notify_recovery: bool = True
    notify_degraded: bool = False


class Viewport(Strict):
    width: int = Field(default=1280, ge=200, le=3840)
    height: int = Field(default=720, ge=200, le=2160)


# ---------------------------------------------------------------- browser steps
class TextMatch(Strict):
    """How browser text assertions compare: the same comparisons as the assertion engine."""

    equals: str | None = None
    not_equals: str | None = None
    contains: str | None = None
    not_contains: str | None = None
    matches: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TextMatch:
        given = [k for k in TEXT_COMPARISONS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of equals, not_equals, contains, not_contains, matches"
            )
        if self.matches is not None:
            try:
                compile_pattern(self.matches)
            except PatternError as exc:
                raise ValueError(f"matches is {exc}") from None
        return self

    @property
    def comparison(self) -> tuple[Comparison, str]:
        for key in TEXT_COMPARISONS:
            value = getattr(self, key)
            if value is not None:
                return key, value
        raise AssertionError("unreachable: validated to hold one comparison")


TEXT_COMPARISONS: tuple[Comparison, ...] = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "matches",
)


class GotoStep(Strict):
    url: str
    timeout: Duration | None = None
    wait_until: Literal["load", "domcontentloaded", "networkidle0", "networkidle2"] = "load"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_url(value)


class SelectorStep(Strict):
    selector: str = Field(min_length=1)
    timeout: Duration | None = None


class FillStep(SelectorStep):
    value: str

    @field_validator("value")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_placeholders(value)


class SelectStep(SelectorStep):
    values: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _single_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data and "values" not in data:
            data = {**data, "values": [data["value"]]}
            del data["value"]
        return data


class PressStep(Strict):
    key: str = Field(min_length=1)
    selector: str | None = None
    timeout: Duration | None = None


class WaitForStep(Strict):
    selector: str | None = None
    text: str | None = None
    navigation: bool | None = None
    hidden: bool = False
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_target(self) -> WaitForStep:
        given = [k for k in ("selector", "text", "navigation") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("wait_for takes exactly one of selector, text, navigation: true")
        return self


class AssertTextStep(TextMatch):
    selector: str = Field(min_length=1)
    timeout: Duration | None = None


class EvaluateStep(Strict):
    expression: str = Field(min_length=1)
    timeout: Duration | None = None


class ScreenshotStep(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    full_page: bool = False


class HeaderStep(Strict):
    name: str = Field(min_length=1)
    value: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return one_line(value)

    @field_validator("value")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_placeholders(one_line(value))


# action -> (model, the field a bare string fills in)
STEP_ACTIONS: dict[str, tuple[type[Strict], str | None]] = {
    "goto": (GotoStep, "url"),
    "click": (SelectorStep, "selector"),
    "fill": (FillStep, None),
    "select": (SelectStep, None),
    "press": (PressStep, "key"),
    "hover": (SelectorStep, "selector"),
    "wait_for": (WaitForStep, "selector"),
    "assert_text": (AssertTextStep, None),
    "assert_title": (TextMatch, "contains"),
    "assert_url": (TextMatch, "contains"),
    "assert_visible": (SelectorStep, "selector"),
    "assert_hidden": (SelectorStep, "selector"),
    "evaluate": (EvaluateStep, "expression"),
    "screenshot": (ScreenshotStep, "name"),
    "set_header": (HeaderStep, None),
    "viewport": (Viewport, None),
    "basic_auth": (BasicAuth, None),
}


class Step(Strict):
    """One browser step, written in YAML as a one-key mapping: ``- click: "#submit"``."""

    action: str
    args: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) == {"action", "args"}:
            return data
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(
                "a step is a mapping with one action, such as {click: '#submit'}; "
                f"actions: {', '.join(STEP_ACTIONS)}"
            )
        ((action, value),) = data.items()
        if action not in STEP_ACTIONS:
            raise ValueError(f"unknown step {action!r}; actions: {', '.join(STEP_ACTIONS)}")
        model, bare_field = STEP_ACTIONS[action]
        if not isinstance(value, dict):
            if bare_field is None or not isinstance(value, str | int | float):
                raise ValueError(f"{action} takes a mapping of its fields")
            value = {bare_field: str(value)}
        parsed = model.model_validate(value)
        return {"action": action, "args": parsed.model_dump(mode="json", exclude_none=True)}

    def parsed(self) -> Any:
        model, _ = STEP_ACTIONS[self.action]
        return model.model_validate(self.args)


class BrowserSpec(Strict):
    timeout: BrowserTimeout = 60.0
    viewport: Viewport = Field(default_factory=Viewport)
    headers: Headers = Field(default_factory=dict)
    basic_auth: BasicAuth | None = None
    steps: list[Step] = Field(min_length=1, max_length=200)


class Check(Strict):
    id: Slug
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    type: Literal["http", "browser"]
    frequency: Duration = 60.0
    locations: list[str] = Field(default_factory=list)
    run_mode: Literal["parallel", "round-robin"] = "parallel"
    enabled: bool = True
    request: Request | None = None
    browser: BrowserSpec | None = None
    degraded_response_time: Duration | None = None
    max_response_time: Duration | None = None
    assertions: list[Assertion] = Field(default_factory=list)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    alert: AlertPolicy = Field(default_factory=AlertPolicy)
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _slug(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else one_line(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            found = control_character(tag)
            if found is not None:
                raise ValueError(f"tag {tag!r} contains the control character {found!r}")
        return value

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: float) -> float:
        if value > MAX_FREQUENCY:
            raise ValueError("must be 24h or less")
        if value < MIN_FREQUENCY:
            raise ValueError("must be 1s or more")
        return value

    @field_validator("locations")
    @classmethod
    def _locations(cls, value: list[str]) -> list[str]:
        for location in value:
            if not LOCATION_RE.fullmatch(location):
                raise ValueError(
                    f"{location!r} is not a location: 1-40 lower-case letters, digits and '-', "
                    "as in eu-west-1"
                )
        if len(set(value)) != len(value):
            raise ValueError("lists a location twice")
        return value

    @model_validator(mode="after")
    def _by_type(self) -> Check:
        if self.type == "http":
            if self.request is None:
                raise ValueError("an http check needs a request")
            if self.browser is not None:
                raise ValueError("an http check takes no browser section")
        else:
            if self.browser is None:
                raise ValueError("a browser check needs a browser section with steps")
            if self.request is not None:
                raise ValueError("a browser check takes no request section")
            if self.assertions:
                raise ValueError("a browser check asserts with its steps, not with assertions")
        if (
            self.degraded_response_time is not None
            and self.max_response_time is not None
            and self.degraded_response_time > self.max_response_time
        ):
            raise ValueError("degraded_response_time must not exceed max_response_time")
        if self.locations and self.alert.min_failing_locations > len(self.locations):
            raise ValueError(
                f"alert.min_failing_locations ({self.alert.min_failing_locations}) exceeds "
                f"the check's {len(self.locations)} location(s)"
            )
        return self

    @property
    def timeout(self) -> float:
        if self.request is not None:
            return self.request.timeout
        assert self.browser is not None
        return self.browser.timeout

    def snapshot(self) -> dict[str, Any]:
        """The JSON form stored in the database and carried in run requests.

        A field added by this release is left out while it holds its default: the
        release before forbids unknown fields, and reads such a snapshot during a roll.
        """
        dumped = self.model_dump(mode="json")
        for section, name, default in ADDED_AT_DEFAULT:
            if dumped[section].get(name) == default:
                del dumped[section][name]
        return dumped


# Fields added after the first release, as (section, field, default): see Check.snapshot.
ADDED_AT_DEFAULT: tuple[tuple[str, str, Any], ...] = (("alert", "min_failing_locations", 1),)


ChannelType = Literal["webhook", "slack", "email", "pagerduty", "opsgenie", "teams", "apprise"]
# Fields a channel has had from the first release; the others are left out of the stored
# configuration when unset, so that a sync after an upgrade finds existing channels unchanged.
_FIRST_CHANNEL_FIELDS = frozenset({"id", "type", "url", "headers", "to"})
MAX_TEMPLATE_CHARS = 16 * 1024
MAX_CHANNEL_URL_CHARS = 2048
# Apprise schemes that post to an endpoint of the user's own: a URL of theirs holds no
# secret unless it has a password. Every other Apprise URL carries a token of a service.
_APPRISE_OWN_ENDPOINTS = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
_WHOLE_PLACEHOLDER_RE = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}")
# Which fields each type takes (beyond id and type).
_CHANNEL_FIELDS: dict[str, frozenset[str]] = {
    "webhook": frozenset({"url", "headers", "template"}),
    # Headers were accepted (and not sent) before: refusing them would break a definition.
    "slack": frozenset({"url", "headers"}),
    "email": frozenset({"to"}),
    "pagerduty": frozenset({"routing_key", "url", "severity"}),
    "opsgenie": frozenset({"api_key", "url", "priority"}),
    "teams": frozenset({"url"}),
    "apprise": frozenset({"url"}),
}


def _secret_placeholder(value: str, field: str) -> None:
    if not _WHOLE_PLACEHOLDER_RE.fullmatch(value):
        raise ValueError(
            f"{field} is a secret: write it as a {{{{NAME}}}} placeholder (its value comes "
            "from SYNMON_VAR_NAME when a notification is sent, and is never stored)"
        )


def validate_template(source: str) -> str:
    """A webhook body template: Jinja2 syntax, checked by the sandbox that renders it."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"a template may have {MAX_TEMPLATE_CHARS:,} characters at most")
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(autoescape=False).from_string(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"invalid Jinja2 template, line {exc.lineno}: {exc.message}") from None
    return source


def validate_apprise_url(value: str) -> str:
    one_line(value)
    check_placeholders(value)
    if len(value) > MAX_CHANNEL_URL_CHARS:
        raise ValueError(f"a URL may have {MAX_CHANNEL_URL_CHARS} characters at most")
    scheme, separator, rest = value.partition("://")
    if not separator or not re.fullmatch(r"[a-z][a-z0-9+.-]{0,31}", scheme.lower()):
        raise ValueError("an Apprise URL is written scheme://..., such as discord://...")
    if scheme.lower() in _APPRISE_OWN_ENDPOINTS:
        userinfo = rest.split("/", 1)[0].rpartition("@")[0]
        password = userinfo.partition(":")[2]
        if password:
            _secret_placeholder(password, "the password in this URL")
    elif not PLACEHOLDER_RE.search(value):
        raise ValueError(
            f"a {scheme}:// URL holds the service's token: write the secret part as a "
            "{{NAME}} placeholder (its value comes from SYNMON_VAR_NAME when a "
            "notification is sent, and is never stored)"
        )
    return value


class Channel(Strict):
    id: Slug
    type: ChannelType
    url: str | None = None
    headers: Headers = Field(default_factory=dict)
    to: list[str] = Field(default_factory=list)
    # webhook: the body, a Jinja2 template (the documented JSON when unset).
    template: str | None = None
    # pagerduty: the integration's routing key, a {{NAME}} placeholder.
    routing_key: str | None = None
    severity: Literal["critical", "error", "warning", "info"] | None = None
    # opsgenie: the API key of the integration, a {{NAME}} placeholder.
    api_key: str | None = None
    priority: Literal["P1", "P2", "P3", "P4", "P5"] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _slug(value)

    @field_validator("headers")
    @classmethod
    def _header_placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        for item in value.values():
            check_placeholders(item)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """The URL's rules by type (here, not in ``_by_type``, so that an error names it)."""
        kind = info.data.get("type")
        if value is None or kind is None or kind == "email":
            return value  # an email channel's url is refused by _by_type
        if kind == "apprise":
            return validate_apprise_url(value)
        validate_url(value)
        # A Teams webhook's URL is its credential (the sig= of a Workflows URL). Webhook
        # and Slack URLs stored in clear stay accepted: they were before placeholders.
        if kind == "teams" and not PLACEHOLDER_RE.search(value):
            raise ValueError(
                "a Teams webhook URL is a secret: write it, or its secret part, as a "
                "{{NAME}} placeholder (its value comes from SYNMON_VAR_NAME when a "
                "notification is sent, and is never stored)"
            )
        return value

    @field_validator("routing_key", "api_key")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None:
            _secret_placeholder(value, "this field")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return None if value is None else validate_template(value)

    @model_serializer(mode="wrap")
    def _stored(self, handler: Any) -> dict[str, Any]:
        document: dict[str, Any] = handler(self)
        for name in list(document):
            if name not in _FIRST_CHANNEL_FIELDS and document[name] is None:
                del document[name]
        return document

    @model_validator(mode="after")
    def _by_type(self) -> Channel:
        allowed = _CHANNEL_FIELDS[self.type]
        article = "an" if self.type[0] in "aeiou" else "a"
        for name in ("url", "headers", "to", "template", "routing_key", "severity", "api_key"):
            if name not in allowed and getattr(self, name):
                raise ValueError(f"{article} {self.type} channel takes no {name!r}")
        if self.priority and "priority" not in allowed:
            raise ValueError(f"{article} {self.type} channel takes no 'priority'")
        if self.type in ("webhook", "slack", "teams", "apprise") and not self.url:
            example = ", such as discord://..." if self.type == "apprise" else ""
            raise ValueError(f"{article} {self.type} channel needs a url{example}")
        if self.type == "pagerduty" and not self.routing_key:
            raise ValueError("a pagerduty channel needs 'routing_key', a {{NAME}} placeholder")
        if self.type == "opsgenie" and not self.api_key:
            raise ValueError("an opsgenie channel needs 'api_key', a {{NAME}} placeholder")
        if self.type != "email":
            return self
        if not self.to:
            raise ValueError("an email channel needs 'to': a list of addresses")
        for address in self.to:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address) or control_character(address):
                raise ValueError(f"{address!r} is not an email address")
        return self
