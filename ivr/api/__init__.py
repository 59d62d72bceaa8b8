"""The agent API: HTTP + WebSocket for agents (docs/api.md), served by the controller.

    app = make_app(desk, token_ttl_s=settings.http.token_ttl_s)
    server = ApiServer(app, settings.http_bind_address, settings.http.port)
    await server.start()   # ApiServerError names the address if it cannot listen
    ...
    await server.stop()
"""

from .app import make_app
from .server import ApiServer, ApiServerError

__all__ = ["ApiServer", "ApiServerError", "make_app"]
