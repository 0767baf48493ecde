"""The endpoint agent: collects a device's posture and reports it to a Ronda server.

Runs on the endpoint, not on the server: it imports only the standard library, httpx, and
typer/rich for its command line. Collectors per operating system sit behind one interface
(`ronda.agent.collectors`) and read the machine only through a `CommandRunner` and a
`FileReader` (`ronda.agent.host`), so each is tested against recorded real tool output.
"""

from __future__ import annotations

from ronda import __version__

AGENT_VERSION = __version__

__all__ = ["AGENT_VERSION"]
