"""Careline settings: read once from the environment (prefix ``CARELINE_``) and ``.env``.

Only this module reads the environment. A missing or malformed setting raises
:class:`SettingsError` whose message is one line naming the setting.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_TOKEN_RE = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{10,}$")
SUPPORTED_LOCALES = ("en", "zh_Hans", "ru")


class Jurisdiction(StrEnum):
    """Which set of clinical rules applies."""

    GENERIC = "generic"
    CN = "cn"


class SettingsError(Exception):
    """A setting is missing or malformed; ``str()`` is one line naming it."""


class Settings(BaseSettings):
    """Every knob of a Careline deployment."""

    model_config = SettingsConfigDict(
        env_prefix="CARELINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    patient_bot_token: SecretStr | None = None
    doctor_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    data_dir: Path = Path("data")
    database_url: str | None = None
    keys_file: Path | None = None
    admin_ids: Annotated[tuple[int, ...], NoDecode] = ()
    redis_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # Telegram Payments: the provider token from BotFather for card payments (prices in a
    # currency such as CNY or EUR); prices in Telegram Stars (XTR) need none.
    payment_provider_token: SecretStr | None = None
    # Booked consultations: free cancellation until this many hours before the time (later,
    # the patient's cancellation is not refunded; the clinic's and the doctor's always are).
    booking_free_cancel_hours: int = Field(default=24, ge=0, le=24 * 14)
    # No-shows: a patient who missed this many booked consultations within this many days
    # pays a deposit upfront to book a free one (returned when it takes place; "free" = none).
    noshow_limit: int = Field(default=2, ge=1, le=100)
    noshow_days: int = Field(default=90, ge=1, le=3650)
    noshow_deposit: str = "100 XTR"
    # Video consultations on the clinic's own Jitsi Meet (rooms named so nobody can guess
    # them); with an app id and secret each participant gets a signed token (JWT, HS256).
    jitsi_url: str | None = None
    jitsi_app_id: str = "careline"
    jitsi_app_secret: SecretStr | None = None
    # cn: the clinic's masked (middle) number shown to a doctor instead of the patient's own;
    # without one, a cn doctor never sees the patient's number (they write or use video).
    masked_number: str | None = Field(default=None, max_length=32)
    webhook_host: str = "0.0.0.0"  # noqa: S104 - a webhook server must be reachable by Telegram
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    # Several worker processes (here: `bot.py run --workers N`, or on other machines) share
    # this PostgreSQL database in webhook mode: each chat is handled by one worker at a time,
    # and a chat's messages are sent in order across workers (docs/DEPLOY.md).
    shared_inbox: bool = False
    jurisdiction: Jurisdiction = Jurisdiction.GENERIC
    default_locale: str = "en"
    timezone: str = "UTC"
    emergency_number: str | None = None
    # A clinic's own intake questionnaire (TOML, same schema as flows/questionnaires/intake.toml).
    intake_file: Path | None = None
    # A suicide-prevention / crisis line shown with the emergency number on self-harm red flags.
    crisis_line: str | None = Field(default=None, max_length=32)
    # Hours a consultation waits in its department's queue before the patient is asked again.
    case_expiry_hours: float = Field(default=24.0, gt=0, le=24 * 14)
    # How long an admin's approval of a doctor lasts before it must be renewed.
    doctor_verification_days: int = Field(default=365, ge=1, le=3650)
    # Patients' limits: open consultations at once, and messages to doctors per minute.
    max_open_cases: int = Field(default=3, ge=1, le=50)
    patient_messages_per_minute: int = Field(default=20, ge=1, le=600)
    # Consultation records kept after a patient's erasure (years; 0 keeps nothing): the chat
    # itself, and the advice summary with the intake and minimal identity (DESIGN.md §6).
    chat_retention_years: int = Field(default=3, ge=0, le=100)
    record_retention_years: int = Field(default=15, ge=0, le=100)
    # A new medication plan's escalation ladder (minutes after the dose time, no answer):
    # remind again, then alert the caregivers, then the doctor.
    remind_again_minutes: int = Field(default=30, ge=5, le=240)
    caregiver_after_minutes: int = Field(default=60, ge=10, le=1440)
    doctor_after_minutes: int = Field(default=120, ge=15, le=2880)
    outbox_global_per_s: float = Field(default=30.0, gt=0)
    outbox_per_chat_per_s: float = Field(default=1.0, gt=0)
    outbox_per_chat_burst: int = Field(default=3, ge=1)
    # Calls in flight at once (one per chat): a crash re-sends at most these, each once.
    outbox_concurrency: int = Field(default=8, ge=1, le=64)
    # Telegram paid broadcasts: Stars a day the clinic allows for bulk messages beyond the
    # free ~30/s (0.1 Star each, up to 1,000/s); 0 = off. Needs paid broadcasts enabled in
    # @BotFather and a balance of at least 10,000 Stars.
    paid_broadcast_stars_per_day: float = Field(default=0.0, ge=0)
    log_level: str = "INFO"
    # E-prescriptions: whether a pharmacist reviews each one before it takes effect (cn:
    # always, whatever this says). The prescribing rules themselves are clinic data in
    # flows/questionnaires/prescribing.toml.
    rx_review: bool = False
    # Referral slips: the address their QR opens (<public_url>/r/<code>?t=<token>), served by
    # the webhook server (or the sandbox page); in polling mode by a small server of its own
    # on verify_host:verify_port when a port is set. Requests per minute per client address;
    # behind a reverse proxy, trust its X-Forwarded-For for that address.
    public_url: str = "http://127.0.0.1:8080"
    verify_host: str = "127.0.0.1"
    verify_port: int | None = Field(default=None, ge=1, le=65535)
    verify_requests_per_minute: int = Field(default=30, ge=1, le=10000)
    verify_trust_proxy: bool = False
    # The reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For hop is
    # believed when verify_trust_proxy is on; the client is the right-most hop not among them.
    verify_trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.0/8", "::1/128")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return tuple(int(p) for p in parts)
            except ValueError:
                raise ValueError("must be comma-separated Telegram user ids") from None
        return value

    @field_validator("verify_trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else value
        try:
            return tuple(
                str(ipaddress.ip_network(str(p).strip(), strict=False))
                for p in parts
                if str(p).strip()
            )
        except ValueError:
            raise ValueError(
                "must be comma-separated IP addresses or networks such as 10.0.0.0/8"
            ) from None

    @field_validator("patient_bot_token", "doctor_bot_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TOKEN_RE.match(value.get_secret_value()):
            raise ValueError("is not a bot token of the form 123456:ABC-DEF...")
        return value

    @field_validator("default_locale")
    @classmethod
    def _check_locale(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_LOCALES)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone name such as Europe/London") from None
        return value

    @field_validator("telegram_api_url", "webhook_url", "public_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @model_validator(mode="after")
    def _ladder_in_order(self) -> Settings:
        if not (
            self.remind_again_minutes < self.caregiver_after_minutes < self.doctor_after_minutes
        ):
            raise ValueError(
                "CARELINE_REMIND_AGAIN_MINUTES < CARELINE_CAREGIVER_AFTER_MINUTES < "
                "CARELINE_DOCTOR_AFTER_MINUTES is required (the escalation ladder's order)"
            )
        return self

    @model_validator(mode="after")
    def _deposit_is_a_price(self) -> Settings:
        from flows.services import BadInput, parse_price  # the one price parser

        try:
            parse_price(self.noshow_deposit)
        except BadInput as exc:
            raise ValueError(
                'CARELINE_NOSHOW_DEPOSIT must be a price such as "100 XTR", "50 CNY" or "free"'
            ) from exc
        return self

    @model_validator(mode="after")
    def _jitsi_is_a_url(self) -> Settings:
        if self.jitsi_url is not None and not re.match(r"^https?://[^\s/]+", self.jitsi_url):
            raise ValueError("CARELINE_JITSI_URL must be the https address of the Jitsi server")
        return self

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "CARELINE_WEBHOOK_SECRET is required when CARELINE_WEBHOOK_URL is set"
            )
        if self.webhook_secret is not None and not re.match(
            r"^[A-Za-z0-9_-]{16,256}$", self.webhook_secret.get_secret_value()
        ):
            raise ValueError(
                "CARELINE_WEBHOOK_SECRET must be 16-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        return self

    @model_validator(mode="after")
    def _shared_needs_postgres_and_webhook(self) -> Settings:
        if self.shared_inbox and not (self.database_url or "").startswith("postgresql"):
            raise ValueError(
                "CARELINE_SHARED_INBOX (several workers) needs CARELINE_DATABASE_URL to be "
                "PostgreSQL: SQLite serves one process"
            )
        if self.shared_inbox and not self.webhook_url:
            raise ValueError(
                "CARELINE_SHARED_INBOX (several workers) needs webhook mode "
                "(CARELINE_WEBHOOK_URL): polling is one worker by design"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'careline.db').resolve()}"

    @property
    def effective_keys_file(self) -> Path:
        """Where the master key ring lives (never inside the database)."""
        return self.keys_file or self.data_dir / "keys.json"

    @property
    def local_emergency_number(self) -> str:
        """The emergency number patients are told to call."""
        if self.emergency_number:
            return self.emergency_number
        return "120" if self.jurisdiction is Jurisdiction.CN else "112"

    def require_tokens(self) -> tuple[str, str]:
        """Both bot tokens, or :class:`SettingsError` naming the missing one."""
        if self.patient_bot_token is None:
            raise SettingsError("CARELINE_PATIENT_BOT_TOKEN is not set")
        if self.doctor_bot_token is None:
            raise SettingsError("CARELINE_DOCTOR_BOT_TOKEN is not set")
        return (
            self.patient_bot_token.get_secret_value(),
            self.doctor_bot_token.get_secret_value(),
        )


def load_settings(**overrides: Any) -> Settings:
    """Read settings once; turn validation errors into one line naming the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        name = f"CARELINE_{str(loc[0]).upper()}" if loc else "a setting"
        msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        if msg.startswith("CARELINE_"):
            raise SettingsError(msg) from None
        raise SettingsError(f"{name} {msg}" if msg[:1].islower() else f"{name}: {msg}") from None
