"""The images' health check script against real gRPC and HTTP servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fedgrid.grpcserver import GrpcService
from tests.deploy.conftest import healthcheck


class _Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_grpc_service_is_healthy_while_serving_and_not_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = GrpcService("model-store", [], "127.0.0.1:0")
    monkeypatch.setenv("FEDGRID_MODEL_STORE_PORT", str(service.port))
    service.start()
    try:
        serving = healthcheck.main(["model-store"])
    finally:
        service.stop(grace=0)

    assert serving == 0
    assert healthcheck.main(["model-store"]) == 1


def test_http_service_needs_200_from_healthz(
    monkeypatch: pytest.MonkeyPatch, http_server: ThreadingHTTPServer
) -> None:
    monkeypatch.setenv("FEDGRID_SIGNALING_PORT", str(http_server.server_address[1]))

    assert healthcheck.main(["signaling"]) == 0
    monkeypatch.setattr(_Healthz, "status", 503)
    assert healthcheck.main(["signaling"]) == 1


def test_bad_setting_is_unhealthy_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEDGRID_GATEWAY_PORT", "eighty")

    assert healthcheck.main(["gateway"]) == 1
    assert "FEDGRID_GATEWAY_PORT" in capsys.readouterr().err


def test_unknown_service_is_a_usage_error() -> None:
    assert healthcheck.main(["database"]) == 2
