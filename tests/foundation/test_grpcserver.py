"""gRPC services: health protocol, and a busy port is an error, never shared."""

from __future__ import annotations

import pytest

from fedgrid.errors import Unavailable
from fedgrid.grpcserver import GrpcService, health_status


def test_started_service_reports_serving_then_not_serving() -> None:
    service = GrpcService("probe", [], "127.0.0.1:0")
    service.start()
    try:
        assert health_status(service.address) == "SERVING"
    finally:
        service.stop(grace=0)

    assert health_status(service.address, timeout=0.5) == "UNREACHABLE"


def test_second_service_on_a_busy_port_is_refused() -> None:
    first = GrpcService("first", [], "127.0.0.1:0")
    first.start()
    try:
        with pytest.raises(Unavailable, match=r"second: cannot bind 127\.0\.0\.1"):
            GrpcService("second", [], first.address)
    finally:
        first.stop(grace=0)
