"""Deterministic V2X channel models: range cut, PDR(d), Gilbert-Elliott bursts, fragmentation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from hashlib import blake2b
from typing import Callable, NamedTuple

import numpy as np

from netsim.config import NetsimConfig

_INV_2_53 = 2.0**-53
_SQRT2 = math.sqrt(2.0)
_EXP_MAX = 700.0  # math.exp overflows just above 709


class Logistic(NamedTuple):
    """Parameters of PDR(d) = a / (1 + exp((d - d50_m) / s_m))."""

    a: float
    d50_m: float
    s_m: float


# Least-squares fits of published PDR-vs-distance curves at 23 dBm (sources: docs/scenarios.md, "Radio presets").
PRESETS: dict[str, Logistic] = {
    "ieee80211p": Logistic(a=0.973, d50_m=271.0, s_m=35.6),  # beta 0.06 veh/m, 10 Hz, 190 B
    "cv2x": Logistic(a=0.985, d50_m=551.0, s_m=82.3),  # LTE-V2X Mode 4, beta 0.1 veh/m
}


def _enc(key: int | str) -> bytes:
    """Unambiguous compact encoding of one key (ints tagged 'i', strings length-prefixed)."""
    if isinstance(key, int):
        return b"i%d;" % key
    if isinstance(key, str):
        raw = key.encode()
        return b"s%d:%s" % (len(raw), raw)
    raise TypeError(f"keys must be int or str, not {type(key).__name__}")


def _unit(digest: bytes) -> float:
    """Map an 8-byte digest to a float in [0, 1) using its top 53 bits."""
    return (int.from_bytes(digest, "little") >> 11) * _INV_2_53


def uniform(seed: int, *keys: int | str) -> float:
    """Deterministic uniform draw in [0, 1) as a pure function of (seed, *keys)."""
    data = _enc(seed) + b"".join(_enc(k) for k in keys)
    return _unit(blake2b(data, digest_size=8).digest())


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of one (message, receiver) decision by the channel."""

    delivered: bool
    cause: str  # "ok", "range", "channel", "burst", "loss"
    latency_s: float
    fragments: int


class _Link:
    """Per directed link cache: hasher pre-fed with (seed, src, dst) and the GE state."""

    __slots__ = ("hasher", "bad")

    def __init__(self, hasher: "blake2b") -> None:
        self.hasher = hasher
        self.bad = False  # every link starts in the Good state


class Channel:
    """Per-message, per-receiver delivery decisions; deterministic given the seed."""

    def __init__(self, cfg: NetsimConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        self._seed_bytes = _enc(self.seed)
        self._range = float(cfg.range_m)
        self._payload = cfg.mtu_bytes - cfg.fragment_header_bytes
        self._header = cfg.fragment_header_bytes
        self.logistic: Logistic | None = None
        if cfg.model in PRESETS:
            over = {k: v for k, v in cfg.logistic.model_dump().items() if v is not None}
            self.logistic = PRESETS[cfg.model]._replace(**over)
        self._curve: Callable[[float], float] = self._build_curve()
        ge = cfg.burst
        self._ge = ge.enabled
        self._p_gb, self._p_bg = ge.p_good_to_bad, ge.p_bad_to_good
        self._loss_good, self._loss_bad = ge.loss_good, ge.loss_bad
        self._loss = cfg.loss
        self._loss_types = frozenset(cfg.loss_types)  # empty: the extra loss hits every message type
        self._links: dict[str, dict[str, _Link]] = {}
        self._decisions: dict[int, tuple[Decision, ...]] = {}

    def _extra_loss(self, stream: str) -> float:
        """The extra independent loss a message of type `stream` suffers (0 for a type loss_types leaves out)."""
        return self._loss if not self._loss_types or stream in self._loss_types else 0.0

    # ---- model curves -------------------------------------------------------------------------

    def _build_curve(self) -> Callable[[float], float]:
        """Return the scalar per-fragment PDR(d) of the configured model (no range cut)."""
        if self.logistic is not None:
            a, d50, s = self.logistic

            def logistic(d: float) -> float:
                x = (d - d50) / s
                return 0.0 if x > _EXP_MAX else a / (1.0 + math.exp(x))

            return logistic
        if self.cfg.model == "log_distance":
            ld = self.cfg.log_distance
            budget = ld.tx_power_dbm - ld.sensitivity_dbm  # largest tolerable path loss
            pl0, n10, d0, sigma = ld.pl0_db, 10.0 * ld.exponent, ld.d0_m, ld.shadowing_sigma_db

            def log_distance(d: float) -> float:
                margin = budget - (pl0 + n10 * math.log10(max(d, d0) / d0))
                if sigma == 0.0:
                    return 1.0 if margin > 0.0 else 0.0
                return 0.5 * math.erfc(-margin / (sigma * _SQRT2))

            return log_distance
        return lambda d: 1.0  # unit_disk

    def fragment_probability(self, distance_m: float) -> float:
        """Per-fragment delivery probability at distance_m, including the range cut, excluding bursts."""
        return 0.0 if distance_m > self._range else self._curve(distance_m)

    def message_probability(self, distance_m: float, size_bytes: int) -> float:
        """Model delivery probability of a whole message: fragment_probability ** n_fragments."""
        return self.fragment_probability(distance_m) ** self.n_fragments(size_bytes)

    def model_curve(self, distances: np.ndarray, size_bytes: int) -> np.ndarray:
        """Vectorized message_probability over an array of distances (for plots)."""
        d = np.asarray(distances, dtype=float)
        if self.logistic is not None:
            a, d50, s = self.logistic
            with np.errstate(over="ignore"):
                p = a / (1.0 + np.exp((d - d50) / s))
        elif self.cfg.model == "log_distance":
            ld = self.cfg.log_distance
            pl = ld.pl0_db + 10.0 * ld.exponent * np.log10(np.maximum(d, ld.d0_m) / ld.d0_m)
            margin = ld.tx_power_dbm - ld.sensitivity_dbm - pl
            if ld.shadowing_sigma_db == 0.0:
                p = (margin > 0.0).astype(float)
            else:
                z = -margin / (ld.shadowing_sigma_db * _SQRT2)
                p = np.array([0.5 * math.erfc(v) for v in z.ravel()]).reshape(z.shape)
        else:
            p = np.ones_like(d)
        p = np.where(d > self._range, 0.0, p)
        return p ** self.n_fragments(size_bytes)

    def expected_curve(self, distances: np.ndarray, size_bytes: int, stream: str = "") -> np.ndarray:
        """The delivery ratio to expect at each distance with every configured loss: the model curve times
        the extra independent loss (where it hits messages of type `stream`) and the Gilbert-Elliott loss of
        its stationary state (what links.csv measures on average; model_curve alone leaves those out)."""
        curve = self.model_curve(distances, size_bytes) * (1.0 - self._extra_loss(stream))
        if self._ge:
            bad = self._p_gb / (self._p_gb + self._p_bg) if self._p_gb + self._p_bg > 0 else 0.0
            curve = curve * (1.0 - (bad * self._loss_bad + (1.0 - bad) * self._loss_good))
        return curve

    # ---- size-dependent quantities --------------------------------------------------------------

    def n_fragments(self, size_bytes: int) -> int:
        """Fragments for a payload: max(1, ceil(size / (mtu - fragment_header_bytes)))."""
        if size_bytes < 0:
            raise ValueError("size_bytes must be >= 0")
        return max(1, -(-size_bytes // self._payload))

    def latency_s(self, size_bytes: int) -> float:
        """Base latency plus serialization of size + n_fragments * header bytes at bandwidth_bps."""
        wire = size_bytes + self.n_fragments(size_bytes) * self._header
        return self.cfg.latency_base_s + 8.0 * wire / self.cfg.bandwidth_bps

    def _decisions_for(self, size_bytes: int) -> tuple[Decision, ...]:
        """Shared immutable (ok, range, channel, burst, loss) Decisions for one message size."""
        if len(self._decisions) >= 4096:
            self._decisions.clear()
        n, lat = self.n_fragments(size_bytes), self.latency_s(size_bytes)
        out = tuple(Decision(c == "ok", c, lat, n) for c in ("ok", "range", "channel", "burst", "loss"))
        self._decisions[size_bytes] = out  # type: ignore[assignment]
        return out  # type: ignore[return-value]

    # ---- the per-message decision -------------------------------------------------------------

    def _link(self, src: str, dst: str) -> _Link:
        """Create and cache the per-link state for src -> dst."""
        h = blake2b(self._seed_bytes + _enc(src) + _enc(dst), digest_size=8)
        link = self._links.setdefault(src, {})[dst] = _Link(h)
        return link

    def decide(self, src: str, dst: str, seq: int, distance_m: float, size_bytes: int, stream: str = "") -> Decision:
        """Decide delivery of message seq from src to dst: range cut, GE burst, fragment draws.

        stream names the sender's sequence space (the message type, when each type is numbered on
        its own), so two streams never share draws.
        """
        dec = self._decisions.get(size_bytes) or self._decisions_for(size_bytes)
        if distance_m > self._range:
            return dec[1]
        row = self._links.get(src)
        link = row.get(dst) if row is not None else None
        if link is None:
            link = self._link(src, dst)
        base = link.hasher
        if self._ge:
            h = base.copy()
            h.update(b"%si%d;s2:ge" % (stream.encode(), seq))
            u = (int.from_bytes(h.digest(), "little") >> 11) * _INV_2_53
            bad = (u >= self._p_bg) if link.bad else (u < self._p_gb)
            link.bad = bad
            loss = self._loss_bad if bad else self._loss_good
            if loss >= 1.0:
                return dec[3]
            if loss > 0.0:
                h = base.copy()
                h.update(b"%si%d;s7:ge_loss" % (stream.encode(), seq))
                if (int.from_bytes(h.digest(), "little") >> 11) * _INV_2_53 < loss:
                    return dec[3]
        if self._loss > 0.0 and self._extra_loss(stream) > 0.0:  # the lossless default pays no call per message
            h = base.copy()
            h.update(b"%si%d;s4:loss" % (stream.encode(), seq))
            if (int.from_bytes(h.digest(), "little") >> 11) * _INV_2_53 < self._loss:
                return dec[4]
        p = self._curve(distance_m)
        if p >= 1.0:
            return dec[0]  # every draw u < 1 would pass
        if p <= 0.0:
            return dec[2]
        prefix = b"%si%d;" % (stream.encode(), seq)
        for i in range(dec[0].fragments):
            h = base.copy()
            h.update(prefix + b"i%d;" % i)
            if (int.from_bytes(h.digest(), "little") >> 11) * _INV_2_53 >= p:
                return dec[2]
        return dec[0]
