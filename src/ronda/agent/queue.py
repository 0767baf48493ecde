"""Reports waiting to be sent: one gzip file per report in the queue directory.

Files are named by the time they were queued, so sorting the names is sending oldest first. The
queue is bounded: past the limit the oldest reports are dropped (a newer report supersedes them).
"""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path

from ronda.agent.config import DEFAULT_QUEUE_LIMIT, ConfigStore, write_private

log = logging.getLogger("ronda.agent")
SUFFIX = ".json.gz"


class ReportQueue:
    def __init__(self, store: ConfigStore, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.store = store
        self.directory = store.queue_dir
        self.limit = max(1, limit)

    def put(self, body: bytes) -> Path:
        self.store.ensure_dir(self.directory)
        path = self.directory / f"{time.time_ns():020d}-{secrets.token_hex(4)}{SUFFIX}"
        write_private(path, body)
        self._trim()
        return path

    def pending(self) -> list[Path]:
        """Queued reports, oldest first."""
        try:
            names = [p for p in self.directory.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith(".")]
        except FileNotFoundError:
            return []
        return sorted(names, key=lambda p: p.name)

    def __len__(self) -> int:
        return len(self.pending())

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def _trim(self) -> None:
        pending = self.pending()
        excess = len(pending) - self.limit
        for path in pending[: max(0, excess)]:
            log.warning("report queue is full (%d); dropping the oldest report %s", self.limit, path.name)
            path.unlink(missing_ok=True)
