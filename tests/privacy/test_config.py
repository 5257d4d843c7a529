"""The differential_privacy server config: validated at push, round trip."""

from __future__ import annotations

from typing import Any

import pytest

from fedgrid.errors import ConfigError
from fedgrid.jobconfig import DifferentialPrivacyConfig, ServerConfig
from fedgrid.privacy.accountant import PrivacyParameters, epsilon
from tests.privacy.conftest import DP, dp_config


def test_round_trip_keeps_every_field() -> None:
    config = dp_config(differential_privacy={"max_epsilon": 8.0})

    again = ServerConfig.from_json(config.to_json())

    assert again == config
    assert again.differential_privacy == DifferentialPrivacyConfig(
        clipping_norm=1.0, noise_multiplier=1.0, target_delta=1e-5, max_epsilon=8.0
    )
    assert again.privacy_parameters == PrivacyParameters(0.04, 1.0, 1e-5)


def test_without_max_epsilon_the_key_stays_out() -> None:
    data = dp_config().to_dict()

    assert "max_epsilon" not in data["differential_privacy"]
    assert "differential_privacy" not in ServerConfig().to_dict()


def test_sampling_rate_is_max_diffs_over_population() -> None:
    config = dp_config(max_workers=10, max_diffs=5, population_size=50)

    assert config.privacy_parameters is not None
    assert config.privacy_parameters.sampling_rate == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"population_size": None}, "needs server_config.population_size"),
        ({"population_size": 3}, "must be at least max_diffs"),
        ({"averaging": {"method": "median"}}, "is not a sum of clipped diffs"),
        ({"averaging": {"method": "trimmed_mean"}}, "is not a sum of clipped diffs"),
        ({"dp": {"clipping_norm": 0}}, "clipping_norm must be finite and > 0"),
        ({"dp": {"noise_multiplier": -1}}, "noise_multiplier must be finite"),
        ({"dp": {"target_delta": 1.5}}, "target_delta must be below 1"),
        ({"dp": {"adaptive_clipping": True}}, "adaptive_clipping is not supported"),
        ({"dp": {"clip": 1}}, "unknown keys ['clip']"),
        ({"dp": {"max_epsilon": 0.001}}, "is below the epsilon of a single cycle"),
    ],
)
def test_refusals_name_the_field(change: dict[str, Any], message: str) -> None:
    private = dict(DP)
    private.update(change.pop("dp", {}))
    data: dict[str, Any] = {
        "max_workers": 4,
        "population_size": 100,
        "differential_privacy": private,
    }
    data.update(change)
    data = {key: value for key, value in data.items() if value is not None}

    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_dict(data)

    assert message in str(caught.value)


def test_a_required_field_is_named_when_missing() -> None:
    with pytest.raises(ConfigError, match=r"differential_privacy.target_delta is"):
        ServerConfig.from_dict(
            {
                "population_size": 1000,
                "differential_privacy": {"clipping_norm": 1, "noise_multiplier": 1},
            }
        )


def test_max_epsilon_just_above_one_cycle_is_accepted() -> None:
    first = epsilon(PrivacyParameters(0.04, 1.0, 1e-5), 1)

    config = dp_config(differential_privacy={"max_epsilon": first * 1.001})

    assert config.differential_privacy is not None
    assert config.differential_privacy.max_epsilon == pytest.approx(first * 1.001)
