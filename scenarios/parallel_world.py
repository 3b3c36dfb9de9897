"""One world code path for a PettingZoo ParallelEnv: each step every agent's observation out to its process, its
action back, the environment stepped; a world kind says only what its environment does not."""

from __future__ import annotations

import numpy as np
from pettingzoo import ParallelEnv

from protocols.messages import Act, Observation

from .step_driver import EpisodicWorld


class ParallelEnvWorld(EpisodicWorld):
    """EpisodicWorld's schedule over the episodes of `self.par` (agent i's process drives possible_agents[i]).

    Each step: the action masks (the exploration's pruning in training), then to every agent an Observation with
    the reward of its last action, done, and Act(mode, applied); the answers; at the end of an episode the agents
    get the final observation and nothing is stepped. A kind fills in the hooks below."""

    par: ParallelEnv

    # ---- hooks ------------------------------------------------------------------------------------------------
    def reset_options(self, mode: str) -> dict | None:
        """The ParallelEnv's reset options for an episode of this mode."""
        return None

    def masks(self, mode: str, obs: dict, infos: dict, done: bool) -> np.ndarray:
        """(n_agents, n_actions...) bool: what each agent may choose this step."""
        raise NotImplementedError

    def arrays(self, agent: str, obs: dict, infos: dict, mask: np.ndarray) -> dict[str, np.ndarray]:
        """The arrays of agent's observation message."""
        raise NotImplementedError

    def action(self, i: int, answered: bool, value, mask: np.ndarray) -> tuple[object, int | None]:
        """Agent i's action from its answer (value: its Action's value); a missing or unusable one is replaced and
        counted in self.defaulted: (the action, what the agent is told was applied instead, or None)."""
        raise NotImplementedError

    def record(self, mode: str, seed: int, k: int, totals: dict) -> dict:
        """The episode's record from what accumulate() gathered; also reported and logged by the kind."""
        raise NotImplementedError

    def accumulate(self, totals: dict, rewards: dict, infos: dict) -> None:
        """Add one step's rewards and infos to the episode's totals."""
        raise NotImplementedError

    def reward_of(self, agent: str, rewards: dict, infos: dict) -> float:
        """The reward of agent's last action, as its observation message carries it."""
        return float(rewards[agent])

    # ---- the loop -----------------------------------------------------------------------------------------------
    def episode(self, mode: str, seed: int, k: int) -> dict | None:
        """One episode; its record; None if the run was stopped."""
        par = self.par
        agents = list(par.possible_agents)
        obs, infos = par.reset(seed=seed, options=self.reset_options(mode))
        rewards, applied, totals, done = dict.fromkeys(agents, 0.0), {}, {}, False
        while True:
            if self.ep.stopping:
                return None
            self.step += 1
            masks = self.masks(mode, obs, infos, done)
            expected = set()
            for i, agent in enumerate(agents):
                body = Observation(
                    step=self.step,
                    reward=self.reward_of(agent, rewards, infos),
                    done=done,
                    info=Act(mode=mode, applied=applied.pop(agent, None)),
                )
                expected.add(self.send(i, body, self.arrays(agent, obs, infos, masks[i])))
            answers = self.collect(expected)
            if done:
                break
            actions = {}
            for i, agent in enumerate(agents):
                actions[agent], told = self.action(i, i in answers, answers.get(i), masks[i])
                if told is not None:
                    applied[agent] = told
            obs, rewards, _, _, infos = par.step(actions)
            done = not par.agents
            self.accumulate(totals, rewards, infos)
        return self.record(mode, seed, k, {**totals, "last_infos": infos})
