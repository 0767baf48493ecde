"""Settings: one object, read from RONDA_* variables (and .env), passed in explicitly."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SCAN_NETWORKS = (
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8,169.254.0.0/16,100.64.0.0/10,::1/128,fc00::/7,fe80::/10"
)


class SettingsError(Exception):
    """A bad configuration value; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RONDA_", env_file=".env", extra="ignore", validate_default=True)

    data_dir: Path = Field(Path("./var"), description="Where the SQLite file, secret key and reports live.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite under data_dir.")
    redis_url: str = Field("", description="Redis URL for shared rate limits and events (scaled mode).")
    secret_key: str = Field("", description="JWT signing key; generated into data_dir when empty.")
    access_token_ttl: int = Field(86400, ge=60, le=30 * 86400)
    refresh_token_ttl: int = Field(30 * 86400, ge=300, le=365 * 86400)
    api_key_prefix: str = Field("rk", pattern=r"^[a-z][a-z0-9]{1,15}$")
    rate_limits: Literal["on", "off"] = "on"
    auth_cache: bool = Field(
        True, description="Remember verified callers until a user, session, key or tenant changes "
        "(SQLite, or any database with RONDA_REDIS_URL; PostgreSQL alone reads every request's session)."
    )
    scan_allowed_networks: str = DEFAULT_SCAN_NETWORKS
    scan_max_hosts: int = Field(65536, ge=1, le=16_777_216, description="Most addresses one scan may target.")
    scan_max_concurrent: int = Field(2, ge=1, le=1000, description="Queued or running scans per tenant.")
    scan_workers: int = Field(2, ge=1, le=64, description="Scans running at once in this server process.")
    scan_executor: Literal["embedded", "workers"] = Field(
        "embedded", description="embedded: each server runs the scans it accepts; workers: `ronda worker` leases them."
    )
    scan_lease_seconds: float = Field(
        60.0, ge=0.5, le=3600, description="How long a worker's or probe's claim on a scan lasts between heartbeats."
    )
    cors_origins: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    max_body_bytes: int = Field(1_048_576, ge=1024, le=512 * 1_048_576)
    # Argon2id, OWASP's second recommended setting: 19 MiB, 2 passes, 1 lane.
    argon2_memory_kib: int = Field(19456, ge=8192, le=1_048_576)
    argon2_time_cost: int = Field(2, ge=1, le=10)
    argon2_parallelism: int = Field(1, ge=1, le=8)
    max_concurrent_hashes: int = Field(0, ge=0, le=64, description="0 means one per CPU.")
    login_attempts_per_minute: int = Field(10, ge=1, le=10_000)
    device_history_days: int = Field(90, ge=1, le=3650, description="How long superseded device data is kept.")
    maintenance_interval: float = Field(
        3600, ge=0.05, le=7 * 86400, description="Seconds between housekeeping rounds (history pruning, statistics)."
    )
    agent_offline_after: int = Field(90, ge=10, le=86400, description="Seconds without a heartbeat before offline.")
    sweep_interval: float = Field(
        30.0, ge=0.05, le=3600, description="Seconds between sweeps for offline agents and stale devices."
    )
    service_review_sweep_interval: float = Field(
        300.0, ge=0.05, le=86400, description="Seconds between sweeps for services whose review is overdue."
    )
    ws_ping_interval: float = Field(25.0, ge=0.05, le=3600, description="Seconds between WebSocket pings.")
    ws_queue_size: int = Field(1000, ge=1, le=100_000, description="Events buffered per WebSocket before it is closed.")
    max_report_bytes: int = Field(
        8 * 1_048_576, ge=65536, le=256 * 1_048_576, description="Largest accepted agent report body."
    )
    admin_password: str = Field("", description="Used by `ronda admin create` when --password is absent.")
    cve_feed_dir: Path | None = Field(
        None, description="NVD 2.0 feed files that POST /cve/update (and the schedule) import."
    )
    cve_feed_interval: float = Field(
        21600, ge=0, le=30 * 86400, description="Seconds between checks of cve_feed_dir for new files; 0 turns it off."
    )
    cve_match_interval: float = Field(
        30.0, ge=0.05, le=3600, description="Seconds between checks for changed devices and CVE data to re-match."
    )
    metrics_token: str = Field("", description="When set, GET /metrics needs `Authorization: Bearer <token>`.")
    webhook_allow_private: Literal["on", "off"] = Field(
        "on", description="Whether webhooks may go to private and loopback addresses (never link-local)."
    )
    webhook_poll_interval: float = Field(2.0, ge=0.01, le=300, description="Seconds between polls for due webhooks.")
    webhook_timeout: float = Field(10.0, ge=0.5, le=120, description="Seconds one webhook attempt may take.")
    webhook_clock_skew: float = Field(
        0.0, ge=-3.2e8, le=3.2e8, description="Seconds added to the webhook dispatcher's clock (tests; keep 0)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("rate_limits", "webhook_allow_private", mode="before")
    @classmethod
    def _onoff(cls, value: object) -> object:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return {"true": "on", "1": "on", "false": "off", "0": "off"}.get(lowered, lowered)
        return value

    @field_validator("scan_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://", "postgresql://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        if value.startswith("postgresql://"):
            return "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    # Derived values -------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'ronda.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def rate_limits_enabled(self) -> bool:
        return self.rate_limits == "on"

    @property
    def webhook_private_allowed(self) -> bool:
        return self.webhook_allow_private == "on"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def hash_concurrency(self) -> int:
        return self.max_concurrent_hashes or (os.cpu_count() or 1)

    def ensure_secret_key(self) -> str:
        """Return the signing key, creating data_dir/secret_key (mode 0600) on first run."""
        if self.secret_key:
            return self.secret_key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret_key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        os.chmod(path, 0o600)
        self.secret_key = path.read_text().strip()
        if len(self.secret_key) < 32:
            raise SettingsError(f"RONDA_SECRET_KEY: {path} holds fewer than 32 characters")
        return self.secret_key


def load_settings(**overrides: object) -> Settings:
    """Read the environment; a bad value becomes one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "RONDA_" + str(first["loc"][0]).upper() if first["loc"] else "RONDA_?"
        raise SettingsError(f"{name}: {first['msg']}") from None
