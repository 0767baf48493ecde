"""Small parsers shared by the collectors. Pure functions: text in, values out."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

# What firmware prints when the vendor did not fill the field in: not a serial number.
_JUNK_SERIALS = frozenset(
    {
        "", "0", "none", "null", "n/a", "na", "unknown", "default string", "to be filled by o.e.m.",
        "system serial number", "not specified", "not applicable", "chassis serial number", "serial number",
        "0123456789", "123456789", "invalid", "oem", "not available",
    }
)
_HEX = frozenset("0123456789abcdef")


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=value lines with shell quoting, as in /etc/os-release and /etc/machine-info."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw, comments=False, posix=True)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = " ".join(parts)
    return values


def parse_colon_pairs(text: str) -> dict[str, str]:
    """`Key: value` lines (sw_vers, lsof headers); the first colon splits."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def load_json(text: str | None) -> Any:
    """JSON or None; tolerates a UTF-8 BOM and surrounding whitespace (PowerShell prints both)."""
    if not text:
        return None
    text = text.lstrip("\ufeff").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def as_list(value: Any) -> list[Any]:
    """PowerShell's ConvertTo-Json prints one object for one result and an array for several."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def clean_serial(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if text.lower() in _JUNK_SERIALS or not text.strip("0"):
        return None
    return text


def clean_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


def normalize_mac(value: Any) -> str | None:
    """aa:bb:cc:dd:ee:ff from colon, dash or bare spellings; None for empty or all-zero."""
    if not isinstance(value, str):
        return None
    digits = "".join(ch for ch in value.strip().lower() if ch not in ":-. ")
    if len(digits) != 12 or not set(digits) <= _HEX or digits == "0" * 12:
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4, "pb": 1024**5}


def parse_size(text: Any) -> int | None:
    """'16 GB' -> bytes (binary multiples, as system_profiler means them for memory)."""
    if isinstance(text, int):
        return text
    if not isinstance(text, str):
        return None
    match = re.fullmatch(r"\s*([\d.,]+)\s*([KMGTP]?B)?\s*", text, re.IGNORECASE)
    if not match:
        return None
    number = float(match.group(1).replace(",", "."))
    return int(number * _SIZE_UNITS[(match.group(2) or "").lower()])


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
    return None


def split_host_port(text: str) -> tuple[str, int] | None:
    """'127.0.0.1:80', '[::1]:80', '*:22', '127.0.0.53%lo:53', '*.22' (lsof/netstat) -> (address, port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            return None
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            host, sep, port = text.rpartition(".")
            if not sep:
                return None
    if not port.isdigit():
        return None
    host = host.split("%", 1)[0]
    if host in ("*", ""):
        host = "0.0.0.0"  # noqa: S104 - an address read from the machine, not a bind
    return host, int(port)


def strip_quoted(text: str) -> str:
    """Drop "quoted strings" (comments, log prefixes) so words inside them are not read as verdicts."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)

