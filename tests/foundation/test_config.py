"""Settings come from FEDGRID_* variables; a bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedgrid.config import Settings
from fedgrid.errors import ConfigError


def test_defaults_point_at_local_servers() -> None:
    settings = Settings.from_env({})

    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.broker_url == settings.redis_url
    assert settings.database_url.startswith("postgresql://postgres@127.0.0.1:5432/")
    assert settings.object_store == "file"
    assert settings.model_store_address == "127.0.0.1:50051"


def test_values_are_parsed_by_type() -> None:
    settings = Settings.from_env(
        {
            "FEDGRID_GATEWAY_PORT": "9000",
            "FEDGRID_S3_SECURE": "yes",
            "FEDGRID_OBJECT_STORE_PATH": "/tmp/objects",
            "FEDGRID_UNRELATED": "ignored",
        }
    )

    assert settings.gateway_port == 9000
    assert settings.s3_secure is True
    assert settings.object_store_path == Path("/tmp/objects")


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("FEDGRID_GATEWAY_PORT", "eighty", "FEDGRID_GATEWAY_PORT='eighty' is invalid"),
        ("FEDGRID_GATEWAY_PORT", "70000", "between 0 and 65535"),
        ("FEDGRID_REDIS_URL", "localhost:6379", "FEDGRID_REDIS_URL"),
        ("FEDGRID_DATABASE_URL", "mysql://x/y", "postgresql"),
        ("FEDGRID_OBJECT_STORE", "tape", "one of file, s3"),
        ("FEDGRID_S3_SECURE", "maybe", "FEDGRID_S3_SECURE"),
        ("FEDGRID_MODEL_STORE_ADDRESS", "nohost", "HOST:PORT"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        Settings.from_env({variable: value})


def test_s3_needs_an_endpoint() -> None:
    with pytest.raises(ConfigError, match="FEDGRID_S3_ENDPOINT"):
        Settings.from_env({"FEDGRID_OBJECT_STORE": "s3"})


def test_required_secret_has_no_default() -> None:
    settings = Settings.from_env({})

    with pytest.raises(ConfigError, match="FEDGRID_ADMIN_TOKEN must be set"):
        settings.require("admin_token")
    assert (
        Settings.from_env({"FEDGRID_ADMIN_TOKEN": "t0k"}).require("admin_token")
        == "t0k"
    )


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})

    with pytest.raises(AttributeError):
        settings.gateway_port = 1  # type: ignore[misc]
