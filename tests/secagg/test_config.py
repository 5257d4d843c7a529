"""The secure_aggregation key of a server config, validated at push."""

from __future__ import annotations

from typing import Any

import pytest

from fedgrid.errors import ConfigError
from fedgrid.jobconfig import SecureAggregationConfig, ServerConfig


def test_round_trip_keeps_every_field() -> None:
    data: dict[str, Any] = {
        "max_workers": 500,
        "secure_aggregation": {
            "enabled": True,
            "threshold": 8,
            "neighbours": 12,
            "clipping_range": 0.5,
            "bits": 48,
            "max_weight": 200,
            "transport": "webrtc",
        },
    }

    config = ServerConfig.from_dict(data)

    assert config.secure_aggregation == SecureAggregationConfig(
        True, 8, 12, 0.5, 48, 200, "webrtc"
    )
    assert ServerConfig.from_dict(config.to_dict()) == config
    assert ServerConfig.from_json(config.to_json()) == config


def test_absent_key_stays_absent() -> None:
    config = ServerConfig.from_dict({})

    assert config.secure_aggregation is None
    assert "secure_aggregation" not in config.to_dict()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"threshold": 5}, "threshold must exceed half of the share group"),
        ({"threshold": 12}, "be at most its size"),
        ({"neighbours": 7}, "neighbours must be even"),
        ({"bits": 8}, "bits must be in 16..64"),
        ({"bits": 24, "max_weight": 1000}, "raise bits or lower max_weight"),
        ({"clipping_range": 0}, "secure_aggregation.clipping_range must be"),
        ({"transport": "carrier pigeon"}, "secure_aggregation.transport must be"),
        ({"rounds": 3}, "secure_aggregation has unknown keys ['rounds']"),
        ({"enabled": "yes"}, "secure_aggregation.enabled must be true or false"),
    ],
)
def test_bad_values_name_the_field(section: dict[str, Any], message: str) -> None:
    data = {"max_workers": 500, "secure_aggregation": {"enabled": True, **section}}

    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_dict(data)

    assert "server_config.secure_aggregation" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize("method", ["median", "trimmed_mean"])
def test_non_linear_averaging_is_refused_with_secure_aggregation(method: str) -> None:
    data = {"averaging": {"method": method}, "secure_aggregation": {"enabled": True}}

    with pytest.raises(ConfigError, match=f"method '{method}' needs single diffs"):
        ServerConfig.from_dict(data)

    data["secure_aggregation"] = {"enabled": False}
    assert ServerConfig.from_dict(data).averaging.method == method


@pytest.mark.parametrize("method", ["fedavg", "mean", "fedadam", "fedyogi"])
def test_linear_averaging_is_accepted(method: str) -> None:
    data = {"averaging": {"method": method}, "secure_aggregation": {"enabled": True}}

    config = ServerConfig.from_dict(data)

    assert config.secure_aggregation is not None
    assert config.secure_aggregation.enabled
