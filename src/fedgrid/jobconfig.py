"""A job's server and client configs, validated before anything is stored."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

from fedgrid.errors import ConfigError
from fedgrid.privacy.accountant import (
    PrivacyParameters,
    cycles_within,
    epsilon,
    sampling_rate,
)
from fedgrid.secagg.params import check_threshold
from fedgrid.secagg.quantization import check_capacity

POOL_SELECTIONS = ("random", "iterate")
TARGETS = ("python", "browser", "torchscript")
AVERAGING_METHODS = (
    "fedavg",
    "mean",
    "fedavgm",
    "fedadam",
    "fedyogi",
    "fedadagrad",
    "median",
    "trimmed_mean",
)
SYMMETRIC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
MAX_CLIENT_CONFIG_BYTES = 64 * 1024
# Bounds that keep every count and duration representable downstream
# (PostgreSQL integers, Redis scripts, deadlines as Unix times).
MAX_COUNT = 2**31 - 1
MAX_NUMBER = 1e12
MAX_CYCLE_LENGTH = 30 * 24 * 3600.0  # seconds
# A report's sample count weighs its diff: at least one sample, and small
# enough that sums over a cycle's reports stay exact in 64-bit integers.
MAX_SAMPLE_COUNT = MAX_COUNT
SECAGG_TRANSPORTS = ("gateway", "webrtc")
# Averaging that is not a weighted mean needs single diffs: never with secagg.
NON_LINEAR_METHODS = ("median", "trimmed_mean")


class _Fields:
    """Reads typed values out of a mapping, naming the field in every error."""

    def __init__(self, data: Mapping[str, Any], where: str, known: set[str]) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a JSON object")
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{where} has unknown keys {unknown}; known keys are {sorted(known)}"
            )
        self.data, self.where = data, where

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}"

    def integer(
        self, key: str, default: int | None, minimum: int = 0, maximum: int = MAX_COUNT
    ) -> int | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not minimum <= value <= maximum
        ):
            raise ConfigError(
                f"{self._name(key)} must be a whole number from {minimum} to "
                f"{maximum}, got {value!r}"
            )
        return value

    def number(
        self,
        key: str,
        default: float,
        minimum: float = 0.0,
        positive: bool = False,
        maximum: float = MAX_NUMBER,
    ) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self._name(key)} must be a number, got {value!r}")
        if value > maximum:
            raise ConfigError(
                f"{self._name(key)} must be at most {maximum}, got {value}"
            )
        if not math.isfinite(value) or value < minimum or (positive and value <= 0):
            bound = "> 0" if positive else f">= {minimum}"
            raise ConfigError(
                f"{self._name(key)} must be finite and {bound}, got {value}"
            )
        return float(value)

    def choice(self, key: str, default: str, options: tuple[str, ...]) -> str:
        value = self.data.get(key, default)
        if value not in options:
            raise ConfigError(
                f"{self._name(key)} must be one of {list(options)}, got {value!r}"
            )
        return str(value)

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self._name(key)} must be a non-empty string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._name(key)} must be true or false, got {value!r}")
        return value


@dataclass(frozen=True)
class AuthenticationConfig:
    """How workers prove who they are: a JWT checked with a key and an endpoint."""

    type: str = "jwt"
    secret: str | None = None
    is_secret_encoded: bool = False
    public_key: str | None = None
    algorithms: tuple[str, ...] = ()
    audience: str | None = None
    endpoint: str | None = None
    method: str = "POST"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthenticationConfig:
        where = "server_config.authentication"
        known = {field.name for field in cls.__dataclass_fields__.values()}
        read = _Fields(data, where, known)
        secret = read.text("secret")
        public_key = read.text("public_key")
        if (secret is None) == (public_key is None):
            raise ConfigError(f"{where} needs exactly one of secret or public_key")
        algorithms = data.get("algorithms")
        allowed = SYMMETRIC_ALGORITHMS if secret else ASYMMETRIC_ALGORITHMS
        kind = "a secret" if secret else "a public_key"
        if (
            not isinstance(algorithms, list)
            or not algorithms
            or any(alg not in allowed for alg in algorithms)
        ):
            raise ConfigError(
                f"{where}.algorithms must be a non-empty list drawn from "
                f"{list(allowed)} when the key is {kind}, got {algorithms!r}"
            )
        is_encoded = read.boolean("is_secret_encoded", False)
        if secret and is_encoded:
            try:
                base64.b64decode(secret, validate=True)
            except binascii.Error as exc:
                raise ConfigError(f"{where}.secret is not valid base64") from exc
        endpoint = read.text("endpoint")
        if endpoint is not None:
            parsed = urlparse(endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigError(f"{where}.endpoint must be an http(s) URL")
        return cls(
            type=read.choice("type", "jwt", ("jwt",)),
            secret=secret,
            is_secret_encoded=is_encoded,
            public_key=public_key,
            algorithms=tuple(algorithms),
            audience=read.text("audience"),
            endpoint=endpoint,
            method=read.choice("method", "POST", ("POST", "GET")),
        )

    def key(self) -> str | bytes:
        """The verification key: the public key, or the (decoded) secret."""
        if self.public_key is not None:
            return self.public_key
        assert self.secret is not None
        return base64.b64decode(self.secret) if self.is_secret_encoded else self.secret


@dataclass(frozen=True)
class AveragingConfig:
    """Which built-in averaging the aggregator runs, with its parameters."""

    method: str = "fedavg"
    server_learning_rate: float = 1.0
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    trim_ratio: float = 0.1
    shard_size: int = 50

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AveragingConfig:
        where = "server_config.averaging"
        known = {field.name for field in cls.__dataclass_fields__.values()}
        read = _Fields(data, where, known)
        trim_ratio = read.number("trim_ratio", cls.trim_ratio)
        if trim_ratio >= 0.5:
            raise ConfigError(f"{where}.trim_ratio must be below 0.5, got {trim_ratio}")
        for key in ("momentum", "beta1", "beta2"):
            value = read.number(key, getattr(cls, key))
            if value >= 1.0:
                raise ConfigError(f"{where}.{key} must be below 1, got {value}")
        return cls(
            method=read.choice("method", cls.method, AVERAGING_METHODS),
            server_learning_rate=read.number(
                "server_learning_rate", cls.server_learning_rate, positive=True
            ),
            momentum=read.number("momentum", cls.momentum),
            beta1=read.number("beta1", cls.beta1),
            beta2=read.number("beta2", cls.beta2),
            tau=read.number("tau", cls.tau, positive=True),
            trim_ratio=trim_ratio,
            shard_size=read.integer("shard_size", cls.shard_size, minimum=1) or 1,
        )


@dataclass(frozen=True)
class SecureAggregationConfig:
    """SecAgg+ for a job: who holds shares, how many rebuild, the fixed point.

    Each worker's share group is itself and `neighbours` ring neighbours;
    `threshold` of a group rebuild a secret. Diffs are clipped to
    +-clipping_range and summed modulo 2^bits, sample counts capped at
    max_weight; push checks that max_workers such inputs cannot overflow.
    """

    enabled: bool = False
    threshold: int = 7
    neighbours: int = 10
    clipping_range: float = 1.0
    bits: int = 32
    max_weight: int = 1000
    transport: str = "gateway"

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], max_workers: int
    ) -> SecureAggregationConfig:
        where = "server_config.secure_aggregation"
        known = {field.name for field in cls.__dataclass_fields__.values()}
        read = _Fields(data, where, known)
        config = cls(
            enabled=read.boolean("enabled", cls.enabled),
            threshold=read.integer("threshold", cls.threshold, minimum=2) or 2,
            neighbours=read.integer("neighbours", cls.neighbours, minimum=2) or 2,
            clipping_range=read.number(
                "clipping_range", cls.clipping_range, positive=True
            ),
            bits=read.integer("bits", cls.bits, minimum=1) or 1,
            max_weight=read.integer("max_weight", cls.max_weight, minimum=1) or 1,
            transport=read.choice("transport", cls.transport, SECAGG_TRANSPORTS),
        )
        try:
            check_threshold(config.threshold, config.neighbours)
            check_capacity(
                config.bits, max_workers, config.max_weight, config.clipping_range
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        return config


@dataclass(frozen=True)
class DifferentialPrivacyConfig:
    """DP-FedAvg for a job: clip each diff, add Gaussian noise to the sum.

    Noise has standard deviation noise_multiplier x clipping_norm. The
    accountant reports epsilon at target_delta; with max_epsilon the job stops
    before a cycle that would take epsilon above it.
    """

    clipping_norm: float
    noise_multiplier: float
    target_delta: float
    adaptive_clipping: bool = False
    max_epsilon: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DifferentialPrivacyConfig:
        where = "server_config.differential_privacy"
        known = {field.name for field in cls.__dataclass_fields__.values()}
        read = _Fields(data, where, known)
        for key in ("clipping_norm", "noise_multiplier", "target_delta"):
            if key not in data:
                raise ConfigError(f"{where}.{key} is required")
        target_delta = read.number("target_delta", 0.0, positive=True)
        if target_delta >= 1:
            raise ConfigError(
                f"{where}.target_delta must be below 1 (typically below "
                f"1 / population_size), got {target_delta}"
            )
        if read.boolean("adaptive_clipping", False):
            raise ConfigError(
                f"{where}.adaptive_clipping is not supported yet; set a fixed "
                "clipping_norm and adaptive_clipping to false"
            )
        max_epsilon = None
        if data.get("max_epsilon") is not None:
            max_epsilon = read.number("max_epsilon", 0.0, positive=True)
        return cls(
            clipping_norm=read.number("clipping_norm", 0.0, positive=True),
            noise_multiplier=read.number("noise_multiplier", 0.0, positive=True),
            target_delta=target_delta,
            max_epsilon=max_epsilon,
        )


@dataclass(frozen=True)
class ServerConfig:
    """The rules the grid enforces for one job; speeds in kbit/s, times in s."""

    max_workers: int = 100
    pool_selection: str = "random"
    random_admission_probability: float = 0.5
    do_not_reuse_workers_until_cycle: int = 0
    cycle_length: float = 3600.0
    num_cycles: int = 0  # 0 = unlimited
    max_cycle_attempts: int = 0  # 0 = 3 x num_cycles (unlimited when num_cycles is)
    min_diffs: int = 1
    max_diffs: int = 0  # 0 = max_workers
    minimum_upload_speed: float = 0.0
    minimum_download_speed: float = 0.0
    authentication: AuthenticationConfig | None = None
    averaging: AveragingConfig = field(default_factory=AveragingConfig)
    targets: tuple[str, ...] = ("python",)
    population_size: int | None = None
    secure_aggregation: SecureAggregationConfig | None = None
    differential_privacy: DifferentialPrivacyConfig | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerConfig:
        """Validate a server config; every error names the field and the fix."""
        where = "server_config"
        known = {field.name for field in cls.__dataclass_fields__.values()}
        read = _Fields(data, where, known)
        max_workers = read.integer("max_workers", cls.max_workers, minimum=1) or 1
        num_cycles = read.integer("num_cycles", 0) or 0
        attempts = read.integer("max_cycle_attempts", 0) or 3 * num_cycles
        if num_cycles and attempts < num_cycles:
            raise ConfigError(
                f"{where}.max_cycle_attempts ({attempts}) must be at least "
                f"num_cycles ({num_cycles})"
            )
        min_diffs = read.integer("min_diffs", 1, minimum=1) or 1
        max_diffs = read.integer("max_diffs", 0) or max_workers
        if not min_diffs <= max_diffs <= max_workers:
            raise ConfigError(
                f"{where} needs min_diffs <= max_diffs <= max_workers, got "
                f"{min_diffs}, {max_diffs}, {max_workers}"
            )
        probability = read.number("random_admission_probability", 0.5, positive=True)
        if probability > 1:
            raise ConfigError(
                f"{where}.random_admission_probability must be in (0, 1], "
                f"got {probability}"
            )
        targets = data.get("targets", list(cls.targets))
        if (
            not isinstance(targets, list)
            or not targets
            or any(t not in TARGETS for t in targets)
        ):
            raise ConfigError(
                f"{where}.targets must be a non-empty list drawn from {list(TARGETS)}"
            )
        authentication = data.get("authentication")
        averaging = AveragingConfig.from_dict(data.get("averaging", {}))
        secure = data.get("secure_aggregation")
        secure_aggregation = (
            None
            if secure is None
            else SecureAggregationConfig.from_dict(secure, max_workers)
        )
        if (
            secure_aggregation is not None
            and secure_aggregation.enabled
            and averaging.method in NON_LINEAR_METHODS
        ):
            raise ConfigError(
                f"{where}.averaging.method {averaging.method!r} needs single diffs; "
                "with secure_aggregation enabled the grid only sees their sum, so "
                "use a weighted mean (fedavg, mean) or a server optimizer on it"
            )
        population_size = read.integer("population_size", None, minimum=1)
        private = data.get("differential_privacy")
        differential_privacy = (
            None
            if private is None
            else _checked_privacy(
                DifferentialPrivacyConfig.from_dict(private),
                averaging,
                population_size,
                max_diffs,
            )
        )
        return cls(
            max_workers=max_workers,
            pool_selection=read.choice("pool_selection", "random", POOL_SELECTIONS),
            random_admission_probability=probability,
            do_not_reuse_workers_until_cycle=read.integer(
                "do_not_reuse_workers_until_cycle", 0
            )
            or 0,
            cycle_length=read.number(
                "cycle_length",
                cls.cycle_length,
                positive=True,
                maximum=MAX_CYCLE_LENGTH,
            ),
            num_cycles=num_cycles,
            max_cycle_attempts=attempts,
            min_diffs=min_diffs,
            max_diffs=max_diffs,
            minimum_upload_speed=read.number("minimum_upload_speed", 0.0),
            minimum_download_speed=read.number("minimum_download_speed", 0.0),
            authentication=(
                None
                if authentication is None
                else AuthenticationConfig.from_dict(authentication)
            ),
            averaging=averaging,
            targets=tuple(dict.fromkeys(targets)),
            population_size=population_size,
            secure_aggregation=secure_aggregation,
            differential_privacy=differential_privacy,
        )

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """Parse and validate a server config from JSON text."""
        return cls.from_dict(_load_object(text, "server_config"))

    @property
    def requires_speed_test(self) -> bool:
        """Whether workers must report measured speeds to be admitted."""
        return self.minimum_download_speed > 0 or self.minimum_upload_speed > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that from_dict reads back to an equal config."""
        data = asdict(self)
        data["targets"] = list(self.targets)
        if self.authentication is None:
            del data["authentication"]
        else:
            data["authentication"]["algorithms"] = list(self.authentication.algorithms)
            data["authentication"] = {
                key: value
                for key, value in data["authentication"].items()
                if value is not None
            }
        if self.population_size is None:
            del data["population_size"]
        if self.secure_aggregation is None:
            del data["secure_aggregation"]
        if self.differential_privacy is None:
            del data["differential_privacy"]
        elif self.differential_privacy.max_epsilon is None:
            del data["differential_privacy"]["max_epsilon"]
        return data

    @property
    def privacy_parameters(self) -> PrivacyParameters | None:
        """Sampling rate, noise and delta for the accountant; None without DP.

        The sampling rate is max_diffs / population_size: max_diffs is the
        most reports a cycle can use, so the rate bounds every cycle's.
        """
        private = self.differential_privacy
        if private is None or self.population_size is None:
            return None
        return PrivacyParameters(
            sampling_rate=sampling_rate(self.max_diffs, self.population_size),
            noise_multiplier=private.noise_multiplier,
            target_delta=private.target_delta,
        )

    def to_json(self) -> str:
        """Canonical JSON text of the config."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _checked_privacy(
    private: DifferentialPrivacyConfig,
    averaging: AveragingConfig,
    population_size: int | None,
    max_diffs: int,
) -> DifferentialPrivacyConfig:
    """Refuse DP settings the grid cannot honour, naming the fix."""
    where = "server_config.differential_privacy"
    if population_size is None:
        raise ConfigError(
            f"{where} needs server_config.population_size (the number of eligible "
            "workers) to compute the sampling rate of each cycle"
        )
    if averaging.method in NON_LINEAR_METHODS:
        raise ConfigError(
            f"server_config.averaging.method {averaging.method!r} is not a sum of "
            "clipped diffs; with differential_privacy use fedavg, mean or a "
            "server optimizer (fedavgm, fedadam, fedyogi, fedadagrad)"
        )
    try:
        parameters = PrivacyParameters(
            sampling_rate=sampling_rate(max_diffs, population_size),
            noise_multiplier=private.noise_multiplier,
            target_delta=private.target_delta,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if private.max_epsilon is not None and not cycles_within(
        parameters, private.max_epsilon
    ):
        raise ConfigError(
            f"{where}.max_epsilon {private.max_epsilon} is below the epsilon of a "
            f"single cycle ({epsilon(parameters, 1):.4g}); raise max_epsilon or "
            "noise_multiplier, or lower max_diffs"
        )
    return private


def validate_client_config(
    data: Any, server: ServerConfig | None = None
) -> dict[str, Any]:
    """A client config is a small JSON object handed to workers as is.

    With the job's server config, what the server config needs from workers
    is checked too (a signaling URL for secure aggregation over WebRTC).
    """
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ConfigError("client_config must be a JSON object with string keys")
    secure = server.secure_aggregation if server is not None else None
    if secure is not None and secure.enabled and secure.transport == "webrtc":
        url = data.get("signaling_url")
        if not isinstance(url, str) or urlparse(url).scheme not in ("ws", "wss"):
            raise ConfigError(
                "client_config.signaling_url must be the signaling service's ws:// "
                "or wss:// URL when secure_aggregation.transport is webrtc"
            )
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"client_config must be plain finite JSON: {exc}") from exc
    if len(text) > MAX_CLIENT_CONFIG_BYTES:
        raise ConfigError(
            f"client_config is {len(text)} bytes; at most {MAX_CLIENT_CONFIG_BYTES}"
        )
    return data


def _load_object(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object")
    return data
