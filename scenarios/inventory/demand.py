"""Seeded synthetic customer demand per SKU: trend x weekly x annual seasonality, negative-binomial noise."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .config import DemandConfig


class DemandParams(NamedTuple):
    """Per-SKU shape of the expected demand, each an array of length #SKU."""

    base: np.ndarray  # b_j, units/day
    trend: np.ndarray  # g_j, relative change per 365 days
    weekly_amp: np.ndarray  # a_j
    weekly_phase: np.ndarray  # p_j in days (0..6)
    annual_amp: np.ndarray  # s_j
    annual_phase: np.ndarray  # q_j in days (0..365)


def sample_params(cfg: DemandConfig, skus: int, rng: np.random.Generator) -> DemandParams:
    """Draw b_j log-uniform, g_j, a_j, s_j uniform and the phases uniform (ranges in DemandConfig)."""
    base = np.exp(rng.uniform(np.log(cfg.base_min), np.log(cfg.base_max), skus))
    return DemandParams(
        base=base,
        trend=rng.uniform(cfg.trend_min, cfg.trend_max, skus),
        weekly_amp=rng.uniform(0.0, cfg.weekly_amp_max, skus),
        weekly_phase=rng.integers(0, 7, skus).astype(float),
        annual_amp=rng.uniform(0.0, cfg.annual_amp_max, skus),
        annual_phase=rng.uniform(0.0, 365.0, skus),
    )


def expected_demand(p: DemandParams, t: np.ndarray) -> np.ndarray:
    """mu_j(t) = b_j * max(0, 1 + g_j t/365) * (1 + a_j sin(2pi (t+p_j)/7)) * (1 + s_j sin(2pi (t+q_j)/365)).

    t is a 1-D array of day indices; returns (len(t), #SKU), never negative since a_j, s_j < 1.
    """
    t = np.asarray(t, dtype=float)[:, None]
    trend = np.maximum(0.0, 1.0 + p.trend * t / 365.0)
    weekly = 1.0 + p.weekly_amp * np.sin(2 * np.pi * (t + p.weekly_phase) / 7.0)
    annual = 1.0 + p.annual_amp * np.sin(2 * np.pi * (t + p.annual_phase) / 365.0)
    return p.base * trend * weekly * annual


def sample_demand(mu: np.ndarray, dispersion: float, rng: np.random.Generator) -> np.ndarray:
    """d ~ NegBin(mean mu, shape k) drawn as Poisson(mu * G), G ~ Gamma(k, 1/k): integers >= 0, var mu + mu^2/k."""
    gamma = rng.gamma(dispersion, 1.0 / dispersion, size=mu.shape)
    return rng.poisson(mu * gamma).astype(np.int64)


def generate_demand(cfg: DemandConfig, skus: int, seed: int) -> tuple[np.ndarray, DemandParams]:
    """The dataset for one seed: integer demand (cfg.days, skus) and the parameters behind it."""
    rng = np.random.default_rng([seed, 0xD3A4])
    params = sample_params(cfg, skus, rng)
    mu = expected_demand(params, np.arange(cfg.days))
    return sample_demand(mu, cfg.dispersion, rng), params
