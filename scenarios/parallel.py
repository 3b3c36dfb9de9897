"""The base of the environments' PettingZoo ParallelEnv faces: per-agent spaces built once, returned as is."""

from __future__ import annotations

from gymnasium import spaces
from pettingzoo import ParallelEnv


class SpacesParallelEnv(ParallelEnv):
    """A ParallelEnv whose subclass fills `spaces_obs` and `spaces_act` (agent -> space) in its __init__."""

    spaces_obs: dict[str, spaces.Space]
    spaces_act: dict[str, spaces.Space]

    def observation_space(self, agent: str) -> spaces.Space:
        return self.spaces_obs[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.spaces_act[agent]

    def seed_spaces(self, seed: int | None) -> None:
        """Seed the action spaces too, so that sampled actions repeat with the environment's seed."""
        if seed is not None:
            for k, agent in enumerate(self.possible_agents):
                self.spaces_act[agent].seed(seed + k)
