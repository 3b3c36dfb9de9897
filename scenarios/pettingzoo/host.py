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
    """What a discrete-action learner needs of one agent: its flattened observation width and action count."""

    obs_dim: int
    n_actions: int
    masked: bool  # the observation is a dict with "observation" and "action_mask" (PettingZoo's convention)


def load_env(target: str, kwargs: dict) -> ParallelEnv:
    """The environment `target` ("module:callable") returns for kwargs."""
    module, _, name = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except ImportError as err:
        raise HostError(f"world.env {target!r}: cannot import {module!r} ({err})") from None
    except AttributeError:
        raise HostError(f"world.env {target!r}: module {module!r} has no {name!r}") from None
    try:
        env = factory(**kwargs)
    except Exception as err:  # noqa: BLE001 - a user's constructor may raise anything
        raise HostError(f"world.env {target!r} raised {type(err).__name__}: {err}") from None
    if not isinstance(env, ParallelEnv):
        raise HostError(f"world.env {target!r} returned {type(env).__name__}, not a pettingzoo.ParallelEnv")
    if not env.possible_agents:
        raise HostError(f"world.env {target!r} has no possible_agents")
    return env


def agent_spaces(env: ParallelEnv, agent: str) -> AgentSpaces:
    """The agent's spaces as the ippo learner takes them; HostError for a space it cannot handle."""
    act, obs = env.action_space(agent), env.observation_space(agent)
    if not isinstance(act, spaces.Discrete):
        raise HostError(f"agent {agent!r}: action space {act} is not Discrete (the ippo learner needs one)")
    masked = isinstance(obs, spaces.Dict) and "observation" in obs.spaces and "action_mask" in obs.spaces
    inner = obs["observation"] if masked else obs
    try:
        width = spaces.flatdim(inner)
    except (NotImplementedError, ValueError, TypeError):
        raise HostError(f"agent {agent!r}: observation space {inner} cannot be flattened") from None
    return AgentSpaces(int(width), int(act.n), masked)


def flat_observation(env: ParallelEnv, agent: str, obs, masked: bool) -> np.ndarray:
    """The agent's observation as a float32 vector."""
    space = env.observation_space(agent)
    inner, value = (space["observation"], obs["observation"]) if masked else (space, obs)
    return np.asarray(spaces.flatten(inner, value), np.float32).reshape(-1)
