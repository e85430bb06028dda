"""Settings from the environment and `.env` (names: the run contract in ARCHITECTURE.md)."""

import re
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from services.bookings import BookingRules
from services.money import CURRENCIES, MoneyRules
from ui.config import Config

_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = "sqlite+aiosqlite:///data/chargeshare.db"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # several instances: the plugs' telemetry is split between them (MQTT shared
    # subscriptions) instead of every instance getting all of it; the same name on each
    # instance. Unset: every instance gets every message
    mqtt_share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    moderation_chat_id: int
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    redis_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0:8080"
    # webhook mode: /healthz, /readyz and /metrics, kept off the public listener
    metrics_listen: str | None = "127.0.0.1:8081"
    sandbox_port: int = Field(default=8088, ge=0, le=65535)
    timezone: str = "Asia/Shanghai"
    # the moderation group is one chat for many people: one language for it
    group_language: Literal["en", "zh"] = "en"
    # the default currency of prices: one of those a price may have
    currency: str = "CNY"
    # Telegram Payments: the provider token from BotFather (Payments); unset, the bot
    # runs "pay at the shop" (no invoices; the merchant marks an order paid)
    payment_provider_token: SecretStr | None = None
    # the platform's share of each order's cost, and what a no-show keeps of its
    # prepayment (percent, two decimals at most)
    platform_fee_percent: Decimal = Field(default=Decimal(10), ge=0, le=100, decimal_places=2)
    no_show_fee_percent: Decimal = Field(default=Decimal(0), ge=0, le=100, decimal_places=2)
    # how long a booking waits for its payment before it expires
    booking_payment_minutes: int = Field(default=10, ge=2, le=60)
    # how long a merchant has to answer a booking request (never past its start)
    booking_response_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # how long a merchant who accepts walk-ups by hand has to answer one (a rider waits)
    walkup_response_seconds: int = Field(default=120, ge=30, le=15 * 60)
    # how far ahead a booking may start
    booking_horizon_days: int = Field(default=30, ge=1, le=366)
    # where finished orders are logged for the platform; the moderation group when unset
    orders_chat_id: int | None = None
    # a user may switch on this many minutes before the booked window
    start_grace_minutes: int = Field(default=10, ge=0, le=120)
    # how long a power command waits for the plug's own confirmation
    device_confirm_seconds: float = Field(default=10.0, gt=0, le=60)
    # how long a plug may be offline before its session is closed (a broker restart
    # makes every plug look offline for a moment)
    device_offline_grace_seconds: float = Field(default=60.0, ge=0, le=3600)
    # the last resort for a start or stop left unfinished (the bot died or lost the
    # broker mid-way) whose plug does not answer when asked: after this long since Start
    # was pressed the start fails (nothing billed) and the plug is switched off; after
    # this long since Stop was taken in hand the session is closed unconfirmed. A plug
    # that answers decides at once (at start-up, on reconnection, or at the next run)
    start_give_up_seconds: float = Field(default=60.0, gt=0, le=3600)
    stop_give_up_seconds: float = Field(default=30.0, gt=0, le=3600)
    # how often due work runs (expiry, warnings, window-end stops, no-shows)
    scheduler_interval_seconds: float = Field(default=5.0, gt=0, le=60)
    # how often a running session's cards (the rider's, the merchant's) edit themselves
    charging_refresh_seconds: float = Field(default=30.0, ge=1, le=3600)
    # this instance's share of Telegram's ~30 messages/s per bot (divide by instances)
    outbox_rate_per_second: float = Field(default=25.0, gt=0, le=30)
    # booking requests of one user that may wait for a merchant's answer at once
    max_open_bookings_per_user: int = Field(default=3, ge=1, le=100)
    # listings of one merchant that may wait for review at once
    max_listings_under_review: int = Field(default=3, ge=1, le=100)

    # -- pairing plugs and their broker accounts (issue #15) --
    # the broker's address as the plugs reach it (shown in the set-up instructions);
    # unset: MQTT_URL's host. The port: the broker's TLS listener for plugs
    mqtt_plug_host: str | None = None
    mqtt_plug_port: int = Field(default=8883, ge=1, le=65535)
    # mosquitto's dynamic security plugin: the bot creates each plug's account (named as
    # the plug, confined to its topics) as this dynsec admin (unset: the MQTT_* account).
    # Off: the instructions ask the broker's admin to add the account
    mqtt_dynsec: bool = False
    mqtt_dynsec_username: str | None = None
    mqtt_dynsec_password: SecretStr | None = None
    # pairing: how long the plug stays switched the other way, and how long the bot
    # waits for its button to be pressed
    pair_pulse_seconds: float = Field(default=3.0, gt=0, le=30)
    pair_button_seconds: int = Field(default=60, ge=10, le=300)

    @field_validator(
        "mqtt_plug_host",
        "mqtt_dynsec_username",
        "mqtt_dynsec_password",
        "mqtt_username",
        "mqtt_password",
        "mqtt_share_group",
        "payment_provider_token",
        "orders_chat_id",
        "redis_url",
        "webhook_url",
        "webhook_secret",
        "metrics_listen",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `NAME=` in .env means "not set", as in .env.example
        return None if value == "" else value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        bot_id, sep, rest = secret.partition(":")
        if not (sep and bot_id.isdigit() and rest):
            raise ValueError("expected the token BotFather gave, like 123456:ABC-DEF…")
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            bad = [p for p in parts if not p.lstrip("-").isdigit()]
            if bad:
                raise ValueError(f"expected comma-separated numeric Telegram ids, got {bad[0]!r}")
            return frozenset(int(p) for p in parts)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "expected an SQLAlchemy URL such as sqlite+aiosqlite:///data/chargeshare.db "
                "or postgresql+asyncpg://user:password@host/db"
            ) from None
        backend, driver = url.get_backend_name(), url.get_driver_name()
        if _ASYNC_DRIVERS.get(backend) != driver:
            raise ValueError(
                "use sqlite+aiosqlite://… or postgresql+asyncpg://… (an async driver), "
                f"not {backend}+{driver}"
            )
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in CURRENCIES:
            raise ValueError(f"expected one of {', '.join(CURRENCIES)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as Asia/Shanghai") from None
        return value

    @field_validator("telegram_api_url", "webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("webhook_listen", "metrics_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return value
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port, e.g. 0.0.0.0:8080")
        return value

    @model_validator(mode="after")
    def _give_up_after_confirm(self) -> "Settings":
        # a live start or stop waits DEVICE_CONFIRM_SECONDS for its plug: the last
        # resort must not end it while it still waits
        for name in ("start_give_up_seconds", "stop_give_up_seconds"):
            if getattr(self, name) <= self.device_confirm_seconds:
                raise ValueError(
                    f"{name.upper()} must be longer than DEVICE_CONFIRM_SECONDS "
                    f"({self.device_confirm_seconds:g})"
                )
        return self

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> "Settings":
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "WEBHOOK_SECRET is required when WEBHOOK_URL is set (1-256 characters: "
                "A-Z, a-z, 0-9, _ and -), so that only Telegram can call the webhook"
            )
        if self.webhook_secret and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", self.webhook_secret.get_secret_value()
        ):
            raise ValueError("WEBHOOK_SECRET may only have A-Z, a-z, 0-9, _ and - (1-256)")
        if self.metrics_listen and self.metrics_listen == self.webhook_listen:
            raise ValueError(
                "METRICS_LISTEN must differ from WEBHOOK_LISTEN: probes and metrics are "
                "kept off the public listener"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def money_rules(self) -> MoneyRules:
        """What services.payments and services.settlement are told about money."""
        return MoneyRules(
            prepaid=self.payment_provider_token is not None,
            platform_fee_percent=self.platform_fee_percent,
            no_show_fee_percent=self.no_show_fee_percent,
            payment_minutes=self.booking_payment_minutes,
            response_minutes=self.booking_response_minutes,
            admin_chat_id=self.moderation_chat_id,
            currency=self.currency,
        )

    @property
    def platform_chat_id(self) -> int:
        return self.orders_chat_id if self.orders_chat_id is not None else self.moderation_chat_id


def ui_config(settings: Settings) -> Config:
    """The plain values handlers and ui need (they never see the environment)."""
    return Config(
        zone=settings.zone,
        admin_ids=settings.admin_ids,
        moderation_chat_id=settings.moderation_chat_id,
        group_language=settings.group_language,
        currency=settings.currency,
        booking_rules=BookingRules(
            zone=settings.zone,
            response_minutes=settings.booking_response_minutes,
            max_open_requests=settings.max_open_bookings_per_user,
            horizon_days=settings.booking_horizon_days,
            money=settings.money_rules,
            walkup_response_seconds=settings.walkup_response_seconds,
        ),
        max_listings_under_review=settings.max_listings_under_review,
        money=settings.money_rules,
        provider_token=(
            settings.payment_provider_token.get_secret_value()
            if settings.payment_provider_token
            else None
        ),
    )


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "is required (set it in the environment or in .env)"
            lines.append(f"{name} {message}" if error["loc"] else message)
        raise SettingsError("; ".join(lines)) from None
