"""Loading a user's PettingZoo environment by import path and reading what a generic learner needs from its spaces;
every way it can be wrong is a HostError that names the cause."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class HostError(ValueError):
    """The environment cannot be hosted (import path, type, spaces)."""


@dataclass(frozen=True)
class AgentSpaces:
    """What a generic learner needs of one agent: its flattened observation width and its actions (a Discrete
    space's count, or a Box's dimension and bounds)."""

    obs_dim: int
    n_actions: int  # Discrete: the number of actions; Box: 0
    masked: bool  # the observation is a dict with "observation" and "action_mask" (PettingZoo's convention)
    act_dim: int = 0  # Box: the action vector's length
    low: tuple[float, ...] = ()  # Box: the bounds of each component
    high: tuple[float, ...] = ()

    @property
    def continuous(self) -> bool:
        return self.act_dim > 0

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """A Box action from a learner's vector in [-1, 1]^act_dim (clipped): each component mapped onto its bounds."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        low, high = np.asarray(self.low, np.float32), np.asarray(self.high, np.float32)
        return np.clip((low + (a + 1.0) / 2.0 * (high - low)).astype(np.float32), low, high)  # inside after rounding


def load_callable(target: str, field: str):
    """The callable that `target` ("module:callable") names; HostError naming the config field otherwise."""
    module, _, name = target.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except ImportError as err:
        raise HostError(f"{field} {target!r}: cannot import {module!r} ({err})") from None
    except AttributeError:
        raise HostError(f"{field} {target!r}: module {module!r} has no {name!r}") from None
    if not callable(found):
        raise HostError(f"{field} {target!r} is not callable")
    return found


def load_env(target: str, kwargs: dict) -> ParallelEnv:
    """The environment `target` ("module:callable") returns for kwargs."""
    factory = load_callable(target, "world.env")
    try:
        env = factory(**kwargs)
    except Exception as err:  # noqa: BLE001 - a user's constructor may raise anything
        raise HostError(f"world.env {target!r} raised {type(err).__name__}: {err}") from None
    if not isinstance(env, ParallelEnv):
        raise HostError(f"world.env {target!r} returned {type(env).__name__}, not a pettingzoo.ParallelEnv")
    if not env.possible_agents:
        raise HostError(f"world.env {target!r} has no possible_agents")
    return env


def agent_positions(positions, env: ParallelEnv, agents: list[str], step: int) -> np.ndarray:
    """The agents' (x, y) in metres, one row each, from the user's positions(env) -> {agent: (x, y)}; None: all at
    the origin (the radio without range: only the medium's loss). A function that raises, or an agent without a
    finite (x, y), is a HostError that names the agent and the step."""
    if positions is None:
        return np.zeros((len(agents), 2))
    try:
        found = positions(env)
    except Exception as err:  # noqa: BLE001 - a user's function may raise anything
        raise HostError(f"world.positions raised {type(err).__name__} at step {step}: {err}") from None
    xy = np.zeros((len(agents), 2))
    for row, agent in enumerate(agents):
        try:
            xy[row] = np.asarray(found[agent], np.float64).reshape(2)
        except (KeyError, TypeError, ValueError, IndexError):
            raise HostError(f"world.positions gave no (x, y) for agent {agent!r} at step {step}") from None
        if not np.isfinite(xy[row]).all():
            raise HostError(f"world.positions gave {tuple(xy[row])} for agent {agent!r} at step {step}: not finite")
    return xy


def agent_spaces(env: ParallelEnv, agent: str) -> AgentSpaces:
    """The agent's spaces as the generic learners take them; HostError for a space they cannot handle."""
    act, obs = env.action_space(agent), env.observation_space(agent)
    masked = isinstance(obs, spaces.Dict) and "observation" in obs.spaces and "action_mask" in obs.spaces
    inner = obs["observation"] if masked else obs
    try:
        width = spaces.flatdim(inner)
    except (NotImplementedError, ValueError, TypeError):
        raise HostError(f"agent {agent!r}: observation space {inner} cannot be flattened") from None
    if isinstance(act, spaces.Discrete):
        return AgentSpaces(int(width), int(act.n), masked)
    if (
        isinstance(act, spaces.Box)
        and len(act.shape) == 1
        and np.isfinite(act.low).all()
        and np.isfinite(act.high).all()
    ):
        low, high = (tuple(float(x) for x in b) for b in (act.low, act.high))
        return AgentSpaces(int(width), 0, masked, act.shape[0], low, high)
    raise HostError(
        f"agent {agent!r}: action space {act} is neither Discrete (ippo) nor a bounded one-dimensional Box (isac)"
    )


def flat_observation(env: ParallelEnv, agent: str, obs, masked: bool) -> np.ndarray:
    """The agent's observation as a float32 vector."""
    space = env.observation_space(agent)
    inner, value = (space["observation"], obs["observation"]) if masked else (space, obs)
    return np.asarray(spaces.flatten(inner, value), np.float32).reshape(-1)


def generic_learner(method: str, agents: dict[str, AgentSpaces]) -> str:
    """The generic learner role for the agents' spaces: "ippo" (Discrete) or "isac" (Box); method "auto" picks it,
    "ippo" or "isac" must fit every agent."""
    kinds = {"isac" if s.continuous else "ippo" for s in agents.values()}
    if method == "auto":
        if len(kinds) > 1:
            boxes = [a for a, s in agents.items() if s.continuous][:5]
            raise HostError(
                f"algo.method 'auto': agents {boxes} have Box actions and the others Discrete ones; ippo takes "
                "Discrete and isac Box action spaces (a mix needs a role of your own)"
            )
        return kinds.pop()
    misfit = [a for a, s in agents.items() if s.continuous != (method == "isac")]
    if misfit:
        raise HostError(
            f"algo.method {method!r}: agents {misfit[:5]} have {'Box' if method == 'ippo' else 'Discrete'} actions; "
            "ippo takes Discrete and isac Box action spaces (a mix needs a role of your own)"
        )
    return method
