"""Server and client configs: validated at push, every error naming its field."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fedgrid.errors import ConfigError
from fedgrid.jobconfig import ServerConfig, validate_client_config


def test_defaults_and_derived_values() -> None:
    config = ServerConfig.from_dict({"max_workers": 20, "num_cycles": 4})

    assert config.max_diffs == 20
    assert config.max_cycle_attempts == 12
    assert config.pool_selection == "random"
    assert config.random_admission_probability == 0.5
    assert config.requires_speed_test is False
    assert ServerConfig.from_dict({"minimum_download_speed": 2000}).requires_speed_test


def test_json_round_trip_keeps_every_value() -> None:
    config = ServerConfig.from_dict(
        {
            "max_workers": 5,
            "pool_selection": "iterate",
            "cycle_length": 30,
            "authentication": {"secret": "s3cret", "algorithms": ["HS256"]},
            "averaging": {"method": "fedadam", "beta1": 0.8},
            "targets": ["python", "torchscript"],
            "population_size": 100,
        }
    )

    assert ServerConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_wrokers": 3}, "unknown keys \\['max_wrokers'\\]"),
        ({"max_workers": 0}, "max_workers must be a whole number from 1"),
        ({"max_workers": 10**30}, "max_workers must be a whole number from 1 to"),
        ({"max_workers": True}, "max_workers must be a whole number"),
        ({"min_diffs": 5, "max_workers": 2}, "min_diffs <= max_diffs <= max_workers"),
        ({"cycle_length": 0}, "cycle_length must be finite and > 0"),
        ({"cycle_length": 1e308}, "cycle_length must be at most 2592000"),
        ({"cycle_length": "60"}, "cycle_length must be a number"),
        ({"pool_selection": "lottery"}, "pool_selection must be one of"),
        ({"random_admission_probability": 1.5}, "must be in \\(0, 1\\]"),
        ({"num_cycles": 3, "max_cycle_attempts": 2}, "max_cycle_attempts \\(2\\)"),
        ({"targets": ["fridge"]}, "targets must be a non-empty list"),
        ({"averaging": {"method": "vote"}}, "averaging.method must be one of"),
        ({"averaging": {"trim_ratio": 0.5}}, "trim_ratio must be below 0.5"),
        ({"minimum_upload_speed": -1}, "minimum_upload_speed must be finite"),
    ],
)
def test_bad_server_config_names_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig.from_dict(data)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"algorithms": ["HS256"]}, "exactly one of secret or public_key"),
        ({"secret": "s", "public_key": "k", "algorithms": ["HS256"]}, "exactly one"),
        ({"secret": "s", "algorithms": ["RS256"]}, "when the key is a secret"),
        ({"public_key": "k", "algorithms": ["HS256"]}, "when the key is a public_key"),
        ({"secret": "s", "algorithms": ["none"]}, "algorithms must be"),
        (
            {"secret": "%%", "is_secret_encoded": True, "algorithms": ["HS256"]},
            "base64",
        ),
        ({"secret": "s", "algorithms": ["HS256"], "endpoint": "ftp://x"}, "http"),
        ({"secret": "s", "algorithms": ["HS256"], "issuer": "me"}, "unknown keys"),
    ],
)
def test_bad_authentication_is_refused(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig.from_dict({"authentication": auth})


def test_encoded_secret_is_decoded_for_verification() -> None:
    secret = base64.b64encode(b"\x00binary-key").decode()
    auth = {"secret": secret, "is_secret_encoded": True, "algorithms": ["HS256"]}

    config = ServerConfig.from_dict({"authentication": auth})

    assert config.authentication is not None
    assert config.authentication.key() == b"\x00binary-key"


def test_client_config_is_small_plain_json() -> None:
    assert validate_client_config({"lr": 0.1, "epochs": 2}) == {"lr": 0.1, "epochs": 2}
    with pytest.raises(ConfigError, match="JSON object"):
        validate_client_config(["lr"])
    with pytest.raises(ConfigError, match="finite JSON"):
        validate_client_config({"lr": float("nan")})
    with pytest.raises(ConfigError, match="at most 65536"):
        validate_client_config({"blob": "x" * 70_000})


def test_secure_aggregation_over_webrtc_needs_a_signaling_url() -> None:
    server = ServerConfig.from_dict(
        {"secure_aggregation": {"enabled": True, "transport": "webrtc"}}
    )

    with pytest.raises(ConfigError, match=r"client_config\.signaling_url"):
        validate_client_config({"lr": 0.1}, server)
    url = {"signaling_url": "ws://127.0.0.1:8765"}
    assert validate_client_config(url, server) == url
