"""Live event streams over WebSockets: /ws/events, /ws/alerts, /ws/scans/{id}."""
