from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ronda.config import SettingsError, load_settings


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {
        "RONDA_ACCESS_TOKEN_TTL": "soon",
        "RONDA_RATE_LIMITS": "sometimes",
        "RONDA_DATABASE_URL": "mysql://x",
        "RONDA_SECRET_KEY": "short",
        "RONDA_SCAN_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-network",
    }
    for name, value in cases.items():
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError) as info:
            load_settings(_env_file=None)
        assert str(info.value).startswith(name), str(info.value)
        assert "\n" not in str(info.value)
        monkeypatch.delenv(name)


def test_secret_key_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    key = settings.ensure_secret_key()
    assert len(key) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600
    assert load_settings(_env_file=None, data_dir=tmp_path).ensure_secret_key() == key


def test_cli_refuses_to_start_on_a_bad_value(tmp_path: Path) -> None:
    env = {**os.environ, "RONDA_DATA_DIR": str(tmp_path), "RONDA_LOG_FORMAT": "xml"}
    result = subprocess.run(
        [sys.executable, "-m", "ronda.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "RONDA_LOG_FORMAT" in result.stderr
