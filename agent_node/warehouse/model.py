"""The warehouse game of the Alternating-MARL paper (App. G.1): zones on a ring, transition and reward tables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from . import streams

STAY, UP, DOWN = 0, 1, 2


def _cached(table):
    """A table computed once per distinct model (kept outside the instance, so models compare by fields)."""
    return lru_cache(maxsize=32)(table)


ACTION_BONUS = (0.0, 0.5, -0.3)  # c(stay), c(up), c(down)


class WarehouseModel(BaseModel):
    """The paper's tabular warehouse: |S_g| = |S_l| = |A_g| = zones, |A_l| = 3, known model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    zones: int = Field(5, ge=2, le=12)  # zones: the dispatcher's states and actions and the robots' states
    gamma: float = Field(0.95, gt=0, lt=1)  # discount factor
    global_reward: Literal["paper", "repo"] = "paper"  # r_g = 4 - |s_g - a_g| (paper) or 1.0 (released code)
    init: Literal["dirichlet", "uniform"] = "dirichlet"  # population law of the initial zones
    # init = "dirichlet": concentration of each episode's starting zone law (small: robots bunched in few zones)
    dirichlet_alpha: float = Field(0.3, gt=0)
    # which s_g the robots' move reads: s_g(t) (the paper's Eq. 1, "current") or s_g(t+1) (the released code's
    # evaluation, "next"); actions and local rewards read s_g(t) either way
    local_transition: Literal["current", "next"] = "current"

    # ------------------------------------------------------------------ tables
    @property
    @_cached
    def P_g(self) -> np.ndarray:
        """P_g[s_g, a_g, s_g'] = softmax(3 [s' = a_g] + 0.5 [s' = s_g] + 0.1)."""
        z = self.zones
        eye = np.eye(z)
        logits = 0.1 + 3.0 * eye[None, :, :] + 0.5 * eye[:, None, :]
        return _softmax(logits)

    @property
    @_cached
    def P_l(self) -> np.ndarray:
        """P_l[s_l, s_g, a_l, s_l'] on the ring: sticky, a move shifts mass up or down, weak drift to s_g."""
        z = self.zones
        eye = np.eye(z)
        up, down = np.roll(eye, 1, axis=1), np.roll(eye, -1, axis=1)  # up[s, (s+1)%z] = 1
        logits = np.full((z, z, 3, z), 0.1)
        logits += 3.5 * eye[:, None, None, :]
        logits[:, :, UP, :] += 1.5 * up[:, None, :]
        logits[:, :, DOWN, :] += 1.5 * down[:, None, :]
        logits += 0.3 * eye[None, :, None, :]
        return _softmax(logits)

    @property
    @_cached
    def r_g(self) -> np.ndarray:
        """r_g[s_g, a_g]: 4 - |s_g - a_g| (paper, not circular) or 1.0 (the released code)."""
        s = np.arange(self.zones)
        if self.global_reward == "repo":
            return np.ones((self.zones, self.zones))
        return 4.0 - np.abs(s[:, None] - s[None, :]).astype(float)

    @property
    @_cached
    def r_l(self) -> np.ndarray:
        """r_l[s_l, s_g, a_l] = 10 if aligned else 2 / (1 + circular distance), plus the action bonus."""
        s = np.arange(self.zones)
        gap = np.abs(s[:, None] - s[None, :])
        dist = np.minimum(gap, self.zones - gap)
        base = np.where(dist == 0, 10.0, 2.0 / (1.0 + dist))
        return base[:, :, None] + np.asarray(ACTION_BONUS)[None, None, :]

    def check_local_policy(self, pi_l: np.ndarray) -> np.ndarray:
        """pi_l as a [zones, zones, 3] table of probabilities, or ValueError saying what is wrong."""
        pi_l = np.asarray(pi_l, dtype=float)
        if pi_l.shape != (self.zones, self.zones, 3):
            raise ValueError(f"local policy has shape {pi_l.shape}, expected {(self.zones, self.zones, 3)}")
        if not np.all(np.isfinite(pi_l)) or pi_l.min() < 0 or not np.allclose(pi_l.sum(-1), 1.0, atol=1e-6):
            raise ValueError("local policy rows must be probabilities (non-negative, summing to 1)")
        return pi_l

    @property
    def r_max(self) -> float:
        """r~ = max r_g + max r_l (Assumption 2.2)."""
        return float(self.r_g.max() + self.r_l.max())

    # ------------------------------------------------------------------ sampling
    @property
    @_cached
    def P_g_cdf(self) -> np.ndarray:
        return cdf(self.P_g)

    @property
    @_cached
    def P_l_cdf(self) -> np.ndarray:
        return cdf(self.P_l)

    def population_cdf(self, seed: int, episode: int) -> np.ndarray:
        """CDF of the zone law the episode's robots start from (the same in every process)."""
        if self.init == "uniform":
            p = np.full(self.zones, 1.0 / self.zones)
        else:
            p = streams.generator(seed, episode, streams.POPULATION).dirichlet(
                np.full(self.zones, self.dirichlet_alpha)
            )
        return cdf(p)

    def initial_global(self, seed: int, episodes) -> np.ndarray:
        """s_g(0) ~ U(S_g) per episode."""
        u = streams.uniforms(seed, streams.GLOBAL_INIT, episodes, 0, 0)
        return np.minimum((u * self.zones).astype(np.int64), self.zones - 1)

    def initial_local(self, seed: int, episode: int, robots) -> np.ndarray:
        """s_i(0) for the given robot indices of one episode."""
        return streams.pick(
            self.population_cdf(seed, episode), streams.uniforms(seed, streams.LOCAL_INIT, episode, robots, 0)
        )

    def local_act(self, seed: int, episode, robots, t: int, s_l, s_g, pi_l_cdf: np.ndarray):
        """The robots' actions a_i(t) ~ pi_l(.|s_i(t), s_g(t)) and local rewards (vectorised over robots)."""
        a = streams.pick(pi_l_cdf[s_l, s_g], streams.uniforms(seed, streams.LOCAL_ACTION, episode, robots, t))
        return a, self.r_l[s_l, s_g, a]

    def local_move(self, seed: int, episode, robots, t: int, s_l, s_g_move, a):
        """s_i(t+1) ~ P_l(.|s_i(t), s_g_move, a_i(t)); s_g_move is s_g(t) or s_g(t+1) (`local_transition`)."""
        return streams.pick(
            self.P_l_cdf[s_l, s_g_move, a], streams.uniforms(seed, streams.LOCAL_STEP, episode, robots, t)
        )

    def local_step(self, seed: int, episode, robots, t: int, s_l, s_g, pi_l_cdf: np.ndarray, s_g_next=None):
        """One robot step (vectorised over robots): action from pi_l, local reward, next zone (s_g_next is read
        by the move when local_transition = "next")."""
        a, r = self.local_act(seed, episode, robots, t, s_l, s_g, pi_l_cdf)
        return a, r, self.local_move(seed, episode, robots, t, s_l, self.move_reads(s_g, s_g_next), a)

    def move_reads(self, s_g, s_g_next):
        """The global state the robots' move reads."""
        if self.local_transition == "current":
            return s_g
        if s_g_next is None:
            raise ValueError("local_transition = 'next': the move needs s_g(t+1)")
        return s_g_next

    def local_act_one(
        self, seed: int, episode: int, robot: int, t: int, s_l: int, s_g: int, pi_l_cdf: list
    ) -> tuple[int, float]:
        """local_act for one robot on plain Python numbers (pi_l_cdf as nested lists: cdf(pi_l).tolist()):
        the same draws and results, without numpy's per-call overhead (a robot process steps alone)."""
        a = streams.pick_one(pi_l_cdf[s_l][s_g], streams.uniform(seed, streams.LOCAL_ACTION, episode, robot, t))
        return a, self._r_l_list[s_l][s_g][a]

    def local_move_one(self, seed: int, episode: int, robot: int, t: int, s_l: int, s_g_move: int, a: int) -> int:
        """local_move for one robot on plain Python numbers."""
        return streams.pick_one(
            self._P_l_cdf_list[s_l][s_g_move][a], streams.uniform(seed, streams.LOCAL_STEP, episode, robot, t)
        )

    @property
    @_cached
    def _r_l_list(self) -> list:
        return self.r_l.tolist()

    @property
    @_cached
    def _P_l_cdf_list(self) -> list:
        return self.P_l_cdf.tolist()

    def global_step(self, seed: int, episode, t: int, s_g, a_g) -> np.ndarray:
        """s_g(t+1) ~ P_g(. | s_g, a_g)."""
        return streams.pick(self.P_g_cdf[s_g, a_g], streams.uniforms(seed, streams.GLOBAL_STEP, episode, 0, t))


def cdf(p: np.ndarray) -> np.ndarray:
    """Row CDFs with the last entry exactly 1, for streams.pick."""
    c = np.cumsum(p, axis=-1)
    c[..., -1] = 1.0
    return c


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def uniform_local_policy(zones: int) -> np.ndarray:
    """pi_l[s_l, s_g, a_l] = 1/3 (the code's initial local policy)."""
    return np.full((zones, zones, 3), 1.0 / 3.0)


def deterministic_local_policy(actions: np.ndarray) -> np.ndarray:
    """One-hot pi_l table from an action table actions[s_l, s_g]."""
    return np.eye(3)[actions]
