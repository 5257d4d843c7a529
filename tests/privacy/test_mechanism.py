"""Clipping bounds every contribution; the noise has the configured spread."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from fedgrid.averaging import ReportInput, average
from fedgrid.privacy.clipping import clip_diff, l2_norm
from fedgrid.privacy.mechanism import private_averaging, worker_clip
from fedgrid.privacy.noise import SecureGaussian, SeededGaussian, box_muller
from fedgrid.tensors import state_stream_bytes
from tests.privacy.conftest import ZeroNoise, dp_config


def model() -> dict[str, torch.Tensor]:
    return {"w": torch.zeros(4, 3), "b": torch.zeros(3)}


def report(key: str, diff: dict[str, torch.Tensor], samples: int) -> ReportInput:
    blob = state_stream_bytes(diff)
    return ReportInput(key, samples, {}, lambda _buffer: blob)


def scaled(seed: int, norm: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    diff = {k: torch.randn(v.shape, generator=generator) for k, v in model().items()}
    factor = norm / l2_norm(diff.values())
    return {name: tensor * factor for name, tensor in diff.items()}


def test_clipping_bounds_every_contribution_on_the_grid() -> None:
    config = dp_config(differential_privacy={"clipping_norm": 0.5})
    privacy = private_averaging(config, 1, noise=ZeroNoise())
    assert privacy is not None
    # One small diff passes unchanged, two large ones count with norm 0.5.
    diffs = [scaled(1, 0.2), scaled(2, 40.0), scaled(3, 3.0)]
    reports = [report(f"r{i}", d, samples=10**6) for i, d in enumerate(diffs)]

    result = average(model(), reports, config.averaging, privacy=privacy)

    expected_sum = {
        name: sum(d[name] * min(1.0, 0.5 / l2_norm(d.values())) for d in diffs)
        for name in model()
    }
    for name, start in model().items():
        # new = current - sum / max_diffs: sample counts do not weight it.
        expected = start - expected_sum[name] / 4
        assert torch.allclose(result.state[name], expected, atol=1e-6)
    assert result.metrics["reports_used"] == 3


def test_one_worker_moves_the_model_by_at_most_clip_over_denominator() -> None:
    config = dp_config(differential_privacy={"clipping_norm": 2.0})
    privacy = private_averaging(config, 1, noise=ZeroNoise())

    result = average(
        model(), [report("big", scaled(7, 1e6), 1)], config.averaging, privacy=privacy
    )

    moved = l2_norm(result.state.values())
    assert moved == pytest.approx(2.0 / 4, rel=1e-5)


def test_worker_clip_applies_only_with_secure_aggregation() -> None:
    secure = {"enabled": True, "threshold": 2, "neighbours": 2}
    plain, masked = dp_config(), dp_config(secure_aggregation=secure)
    diff = scaled(4, 9.0)

    untouched = worker_clip(plain, diff)
    clipped = worker_clip(masked, diff)

    assert l2_norm(untouched.values()) == pytest.approx(9.0, rel=1e-5)
    assert l2_norm(clipped.values()) <= 1.0 * (1 + 1e-6)
    ratio = clipped["w"] / diff["w"]
    assert torch.allclose(ratio, torch.full_like(ratio, 1 / 9), rtol=1e-4)
    masked_privacy = private_averaging(masked, 1)
    assert masked_privacy is not None and not masked_privacy.clip_on_grid


def test_clip_diff_keeps_small_diffs_and_shrinks_integers_towards_zero() -> None:
    small = {"w": torch.tensor([0.3, 0.4])}
    counters = {"w": torch.tensor([3.0, 4.0]), "n": torch.tensor([10])}

    assert torch.equal(clip_diff(small, 1.0)["w"], small["w"])
    clipped = clip_diff(counters, 5.0)
    assert clipped["n"].dtype == torch.int64
    assert l2_norm(clipped.values()) <= 5.0


def test_noise_std_on_the_mean_matches_the_configuration() -> None:
    config = dp_config(
        max_workers=8,
        differential_privacy={"clipping_norm": 0.7, "noise_multiplier": 1.3},
    )
    privacy = private_averaging(config, 1)
    assert privacy is not None
    sums = {"w": torch.zeros(200_000, dtype=torch.float64)}

    noised = privacy.noised_mean(sums)["w"]

    expected = 1.3 * 0.7 / 8
    assert float(noised.std()) == pytest.approx(expected, rel=0.02)
    assert abs(float(noised.mean())) < 5 * expected / math.sqrt(200_000)


def test_secure_source_draws_standard_normals() -> None:
    draws = SecureGaussian().standard_normal(100_001).numpy()

    assert draws.shape == (100_001,)
    assert stats.kstest(draws, "norm").pvalue > 1e-6
    # Two calls never repeat: the source has no seed to replay.
    assert not (
        SecureGaussian().standard_normal(8) == torch.from_numpy(draws[:8])
    ).all()


def test_box_muller_maps_known_uniforms() -> None:
    import numpy as np

    normals = box_muller(np.array([math.exp(-0.5)]), np.array([0.25]))

    # radius 1 at a quarter turn: cos = 0, sin = 1.
    assert normals == pytest.approx([0.0, 1.0], abs=1e-12)


def test_seeded_source_repeats_for_tests() -> None:
    assert torch.equal(
        SeededGaussian(3).standard_normal(5), SeededGaussian(3).standard_normal(5)
    )
