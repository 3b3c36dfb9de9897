"""Unit tests for netsim.channel: PDR models, fragmentation, determinism, Gilbert-Elliott bursts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from netsim.channel import PRESETS, Channel, Decision, uniform
from netsim.config import NetsimConfig

N = 20_000
MODELS = ["unit_disk", "ieee80211p", "cv2x", "log_distance"]


def make(seed: int = 1, **kw: object) -> Channel:
    """Build a Channel from NetsimConfig keyword overrides."""
    return Channel(NetsimConfig(**kw), seed)


def rate(ch: Channel, d: float, size: int, n: int = N, src: str = "a", dst: str = "b") -> float:
    """Measured delivery rate over n decide() calls with varying seq."""
    return sum(ch.decide(src, dst, s, d, size).delivered for s in range(n)) / n


def close(measured: float, p: float, n: int = N, k: float = 4.5) -> bool:
    """True when measured is within k binomial standard errors (+ epsilon) of p."""
    return abs(measured - p) <= k * math.sqrt(p * (1 - p) / n) + 1e-9


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("d", [10.0, 90.0, 200.0, 280.0, 450.0])
def test_measured_rate_matches_fragment_probability(model: str, d: float) -> None:
    ch = make(model=model, range_m=500.0)
    p = ch.fragment_probability(d)
    assert 0.0 <= p <= 1.0
    assert close(rate(ch, d, 200), p)


@pytest.mark.parametrize("model", ["ieee80211p", "log_distance"])
def test_large_payload_fragments(model: str) -> None:
    ch = make(model=model, range_m=500.0)
    d = 150.0 if model == "ieee80211p" else 60.0
    big = 50_000
    assert ch.n_fragments(big) == 34
    p_big = ch.message_probability(d, big)
    assert p_big == pytest.approx(ch.fragment_probability(d) ** 34)
    r_big, r_small = rate(ch, d, big, n=5000), rate(ch, d, 200, n=5000)
    assert close(r_big, p_big, n=5000)
    assert r_big < r_small


def test_range_cut() -> None:
    for model in MODELS:
        ch = make(model=model, range_m=100.0)
        assert ch.fragment_probability(100.0001) == 0.0
        assert ch.model_curve(np.array([100.0001]), 200)[0] == 0.0
        for s in range(200):
            dec = ch.decide("a", "b", s, 100.5 + s, 200)
            assert not dec.delivered and dec.cause == "range"
    assert make(model="unit_disk", range_m=100.0).decide("a", "b", 0, 100.0, 200).cause == "ok"


def test_determinism() -> None:
    def seq(seed: int) -> list[Decision]:
        ch = make(seed, model="ieee80211p", burst={"enabled": True, "loss_good": 0.05, "loss_bad": 0.7})
        return [ch.decide(f"v{s % 3}", f"v{s % 5}", s, 230.0, 200 + s % 4000) for s in range(3000)]

    assert seq(7) == seq(7)
    assert seq(7) != seq(8)


def test_decide_is_pure_function_of_keys() -> None:
    ch = make(3, model="ieee80211p")
    d, p = 250.0, ch.fragment_probability(250.0)
    for s in range(500):
        assert ch.decide("x", "y", s, d, 100).delivered == (uniform(3, "x", "y", s, 0) < p)
    # the other direction of the same pair is an independent link
    fwd = [ch.decide("x", "y", s, d, 100).delivered for s in range(500)]
    rev = [ch.decide("y", "x", s, d, 100).delivered for s in range(500)]
    assert fwd != rev
    assert all(0.0 <= uniform(1, "k", i) < 1.0 for i in range(1000))


def test_gilbert_elliott_simple_gilbert() -> None:
    p, r, n = 0.05, 0.25, 100_000
    ch = make(model="unit_disk", burst={"enabled": True, "p_good_to_bad": p, "p_bad_to_good": r})
    decs = [ch.decide("a", "b", s, 50.0, 200) for s in range(n)]
    assert {d.cause for d in decs} == {"ok", "burst"}
    lost = np.array([not d.delivered for d in decs], dtype=float)
    pi, rho = p / (p + r), 1 - p - r
    se = math.sqrt(pi * (1 - pi) / n * (1 + rho) / (1 - rho))  # Markov-inflated standard error
    assert abs(lost.mean() - pi) < 4.5 * se
    x = lost - lost.mean()
    assert float(x[1:] @ x[:-1] / (x @ x)) == pytest.approx(rho, abs=0.03)
    edges = np.diff(np.concatenate([[0.0], lost, [0.0]]))
    bursts = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    assert bursts.mean() == pytest.approx(1 / r, rel=0.08)


def test_the_extra_loss_hits_only_the_listed_message_types() -> None:
    every = make(model="unit_disk", loss=0.4)
    chunks_only = make(model="unit_disk", loss=0.4, loss_types=["segment_response"])
    for stream in ("segment_request", "segment_response"):
        lost = [not every.decide("a", "b", s, 10.0, 200, stream).delivered for s in range(4000)]
        assert np.mean(lost) == pytest.approx(0.4, abs=0.03)
    for s in range(4000):  # the listed type keeps the very same draws; the others are never lost
        assert chunks_only.decide("a", "b", s, 10.0, 200, "segment_request").delivered
        assert chunks_only.decide("a", "b", s, 10.0, 200, "segment_response") == every.decide(
            "a", "b", s, 10.0, 200, "segment_response"
        )


def test_gilbert_elliott_independent_per_link() -> None:
    ch = make(model="unit_disk", burst={"enabled": True, "p_good_to_bad": 0.1, "p_bad_to_good": 0.1})
    a = [ch.decide("a", "b", s, 1.0, 10).delivered for s in range(2000)]
    b = [ch.decide("a", "c", s, 1.0, 10).delivered for s in range(2000)]
    assert a != b


def test_latency_and_fragments() -> None:
    ch = make(latency_base_s=0.002, bandwidth_bps=1e6, mtu_bytes=1000)
    assert ch.latency_s(0) == pytest.approx(0.002)
    assert ch.latency_s(1250) == pytest.approx(0.002 + 8 * 1250 / 1e6)
    assert (ch.n_fragments(0), ch.n_fragments(1), ch.n_fragments(1000), ch.n_fragments(1001)) == (1, 1, 1, 2)
    hdr = make(mtu_bytes=1000, fragment_header_bytes=100, bandwidth_bps=1e6, latency_base_s=0.0)
    assert (hdr.n_fragments(900), hdr.n_fragments(901)) == (1, 2)
    assert hdr.latency_s(901) == pytest.approx(8 * (901 + 2 * 100) / 1e6)
    dec = hdr.decide("a", "b", 0, 0.0, 901)
    assert dec.fragments == 2 and dec.latency_s == pytest.approx(hdr.latency_s(901))
    with pytest.raises(ValueError):
        ch.n_fragments(-1)


def test_logistic_presets_and_spec_table() -> None:
    assert PRESETS["ieee80211p"] == (0.973, 271.0, 35.6)
    assert PRESETS["cv2x"] == (0.985, 551.0, 82.3)
    ch = make(model="ieee80211p", range_m=1000.0)
    for d, want in [(100, 0.963), (200, 0.852), (300, 0.297)]:
        assert abs(ch.fragment_probability(d) - want) < 0.03
    curve = ch.model_curve(np.array([100.0, 200.0, 300.0, 5000.0]), 200)
    assert np.allclose(curve[:3], [ch.fragment_probability(d) for d in (100, 200, 300)])
    assert curve[3] < 1e-50
    over = make(model="cv2x", logistic={"d50_m": 400.0})
    assert over.logistic == (0.985, 400.0, 82.3)


def test_log_distance_model() -> None:
    ch = make(model="log_distance", range_m=1000.0)
    ld = ch.cfg.log_distance
    d50 = ld.d0_m * 10 ** ((ld.tx_power_dbm - ld.sensitivity_dbm - ld.pl0_db) / (10 * ld.exponent))
    assert ch.fragment_probability(d50) == pytest.approx(0.5)
    assert ch.fragment_probability(0.1) == ch.fragment_probability(ld.d0_m)
    ds = np.array([1.0, 50.0, d50, 150.0, 400.0])
    assert np.allclose(ch.model_curve(ds, 200), [ch.fragment_probability(d) for d in ds])
    hard = make(model="log_distance", log_distance={"shadowing_sigma_db": 0.0})
    assert (hard.fragment_probability(d50 * 0.99), hard.fragment_probability(d50 * 1.01)) == (1.0, 0.0)


@pytest.mark.parametrize(
    "kw",
    [
        {"range_m": -1.0},
        {"range_m": 0.0},
        {"mtu_bytes": 63},
        {"bogus": 1},
        {"burst": {"p_bad_to_good": 0.0}},
        {"burst": {"loss_bad": 1.5}},
        {"logistic": {"s_m": -2.0}},
        {"log_distance": {"unknown": 1}},
        {"model": "two_ray"},
        {"mtu_bytes": 100, "fragment_header_bytes": 100},
        {"loss_types": ["segment_chunk"]},
    ],
)
def test_invalid_config(kw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NetsimConfig(**kw)


def test_validation_error_names_field() -> None:
    with pytest.raises(ValidationError, match="range_m"):
        NetsimConfig(range_m=-5)
    with pytest.raises(ValidationError, match="mtu_bytes"):
        NetsimConfig(mtu_bytes=10)
