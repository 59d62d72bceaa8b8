"""The agent API: HTTP + WebSocket for agents (docs/api.md)."""
