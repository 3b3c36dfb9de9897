"""One world code path for a PettingZoo ParallelEnv: each step every agent's observation out to its process, its
action back, the environment stepped; a world kind says only what its environment does not."""

from __future__ import annotations

import numpy as np
from pettingzoo import ParallelEnv

from protocols.messages import Act, Observation, Phase

from .step_driver import AgentExchange, EpisodicWorld, node_name


class ParallelEnvLoop(AgentExchange):
    """One episode of `self.par`, in lock-step with the agent processes (possible_agents[i] is driven by the
    process node_of(i, agent)).

    Each step: before_observe (the CAV world syncs the medium here), the action masks, then to every agent in
    the observations an Observation with the reward of its last action, done (the episode's end, or the agent's
    own termination or truncation) and its phase; the answers; at the end of the episode the agents get the final
    observation and nothing is stepped. A kind fills in the hooks below."""

    par: ParallelEnv

    # ---- hooks ------------------------------------------------------------------------------------------------
    def node_of(self, i: int, agent: str) -> str:
        """The process that drives possible_agents[i]."""
        return node_name(i)

    def before_observe(self) -> None:
        """Whatever the step needs before the observations go out (the CAV world: the medium's tick)."""

    def masks(self, mode: str, obs: dict, infos: dict, done: bool) -> np.ndarray | list:
        """Per agent index: what the agent may choose this step (None: everything)."""
        return [None] * len(self.par.possible_agents)

    def phase(self, mode: str, agent: str, t: int, done: bool, infos: dict, terms: dict, applied: int | None) -> Phase:
        """The phase of agent's observation message at the episode's step t."""
        return Act(mode=mode, applied=applied)

    def radio_expected(self, node: str) -> int | None:
        """Radio messages the medium has delivered to node so far (None: no medium)."""
        return None

    def arrays(self, agent: str, obs: dict, infos: dict, mask) -> dict[str, np.ndarray]:
        """The arrays of agent's observation message."""
        raise NotImplementedError

    def action(self, i: int, answered: bool, value, mask) -> tuple[object, int | None]:
        """Agent i's action from its answer (value: its Action's value): (the action, or None to leave the agent's
        action out of the step; what the agent is told was applied instead, or None). A kind that replaces a
        missing or unusable answer counts it."""
        raise NotImplementedError

    def reward_of(self, agent: str, rewards: dict, infos: dict) -> float:
        """The reward of agent's last action, as its observation message carries it."""
        return float(rewards.get(agent, 0.0))

    def accumulate(self, totals: dict, rewards: dict, infos: dict) -> None:
        """Add one step's rewards and infos to the episode's totals."""

    def episode_over(self) -> bool:
        """Whether the step just taken ended the episode (PettingZoo's: no agent left)."""
        return not self.par.agents

    def stepped(self) -> None:
        """After each environment step (progress reports)."""

    # ---- the loop -----------------------------------------------------------------------------------------------
    def play(self, mode: str, seed: int | None, options: dict | None = None) -> dict | None:
        """One episode; its totals (what accumulate() gathered, the steps taken as "t", the last infos as
        "last_infos"); None if the run was stopped."""
        par = self.par
        index = {agent: i for i, agent in enumerate(par.possible_agents)}
        obs, infos = par.reset(seed=seed, options=options)
        rewards, terms, truncs, applied, totals, done, t = {}, {}, {}, {}, {}, False, 0
        while True:
            if self.ep.stopping:
                return None
            self.step += 1
            self.before_observe()
            masks = self.masks(mode, obs, infos, done)
            expected = set()
            for agent in obs:
                i = index[agent]
                node = self.node_of(i, agent)
                body = Observation(
                    step=self.step,
                    reward=self.reward_of(agent, rewards, infos),
                    done=done or terms.get(agent, False) or truncs.get(agent, False),
                    info=self.phase(mode, agent, t, done, infos, terms, applied.pop(agent, None)),
                    radio_expected=self.radio_expected(node),
                )
                expected.add(self.send_to(node, body, self.arrays(agent, obs, infos, masks[i])))
            answers = self.collect_nodes(expected)
            self.note_radio(answers)
            if done:
                break
            actions = {}
            for agent in par.agents:
                i = index[agent]
                answer = answers.get(self.node_of(i, agent))
                action, told = self.action(i, answer is not None, None if answer is None else answer.value, masks[i])
                if action is not None:
                    actions[agent] = action
                if told is not None:
                    applied[agent] = told
            obs, rewards, terms, truncs, infos = par.step(actions)
            t += 1
            done = self.episode_over()
            self.accumulate(totals, rewards, infos)
            self.stepped()
        return {**totals, "t": t, "last_infos": infos}


class ParallelEnvWorld(ParallelEnvLoop, EpisodicWorld):
    """EpisodicWorld's schedule (signals, inventory) over the episodes of `self.par`, agent i's process (agent<i>)
    driving possible_agents[i]; a kind adds reset_options and record to the loop's hooks."""

    def reset_options(self, mode: str) -> dict | None:
        """The ParallelEnv's reset options for an episode of this mode."""
        return None

    def record(self, mode: str, seed: int, k: int, totals: dict) -> dict:
        """The episode's record from what accumulate() gathered; also reported and logged by the kind."""
        raise NotImplementedError

    def episode(self, mode: str, seed: int, k: int) -> dict | None:
        """One episode; its record; None if the run was stopped."""
        totals = self.play(mode, seed, self.reset_options(mode))
        return None if totals is None else self.record(mode, seed, k, totals)
