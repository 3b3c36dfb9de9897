"""One world code path for a PettingZoo ParallelEnv: each step every agent's observation out to its process, its
action back, the environment stepped; a world kind says only what its environment does not."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pettingzoo import ParallelEnv

from protocols.messages import Act, Observation, Phase

from .step_driver import AgentExchange, EpisodicWorld, node_name


@dataclass
class StepView:
    """What the environment returned last (reset: no rewards, terminations or truncations yet)."""

    obs: dict
    infos: dict
    rewards: dict = field(default_factory=dict)
    terms: dict = field(default_factory=dict)
    truncs: dict = field(default_factory=dict)
    done: bool = False  # the episode is over: these are the final observations
    t: int = 0  # environment steps taken in the episode

    def ended(self, agent: str) -> bool:
        """The episode is over for agent (its own termination or truncation, or everyone's end)."""
        return self.done or self.terms.get(agent, False) or self.truncs.get(agent, False)


class ParallelEnvLoop(AgentExchange):
    """One episode of `self.par`, in lock-step with the agent processes (possible_agents[i] is driven by the
    process node_of(i, agent)).

    Each step: before_observe (the CAV world syncs the medium here), the action masks, then to every agent in
    the observations its message (by default an Observation with the reward of its last action, done: the
    episode's end or the agent's own termination or truncation, and its phase); the answers; at the end of the
    episode the agents get the final observation and nothing is stepped. A kind fills in the hooks below.
    `self.told[agent]`: what the agent is told with its next message was applied instead of its answer."""

    par: ParallelEnv
    final_observation = True  # False: the episode ends with the last answers, no final observation goes out

    # ---- hooks ------------------------------------------------------------------------------------------------
    def node_of(self, i: int, agent: str) -> str:
        """The process that drives possible_agents[i]."""
        return node_name(i)

    def before_observe(self) -> None:
        """Whatever the step needs before the observations go out (the CAV world: the medium's tick)."""

    def masks(self, mode: str, obs: dict, infos: dict, done: bool) -> np.ndarray | list:
        """Per agent index: what the agent may choose this step (None: everything)."""
        return [None] * len(self.par.possible_agents)

    def message(self, mode: str, agent: str, node: str, mask, view: StepView) -> tuple[Observation, dict] | None:
        """Agent's message this step and its arrays; None: the agent is not addressed this step."""
        body = Observation(
            step=self.step,
            reward=self.reward_of(agent, view.rewards, view.infos),
            done=view.ended(agent),
            info=self.phase(mode, agent, view, self.told.pop(agent, None)),
            radio_expected=self.radio_expected(node),
        )
        return body, self.arrays(agent, view.obs, view.infos, mask)

    def phase(self, mode: str, agent: str, view: StepView, applied: int | None) -> Phase:
        """The phase of agent's observation message."""
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
        view = StepView(*par.reset(seed=seed, options=options))
        self.told, totals = {}, {}
        while not (view.done and not self.final_observation):
            if self.ep.stopping:
                return None
            self.step += 1
            self.before_observe()
            masks = self.masks(mode, view.obs, view.infos, view.done)
            expected = set()
            for agent in view.obs:
                i = index[agent]
                node = self.node_of(i, agent)
                if (out := self.message(mode, agent, node, masks[i], view)) is not None:
                    expected.add(self.send_to(node, *out))
            answers = self.collect_nodes(expected)
            self.note_radio(answers)
            if view.done:
                break
            actions = {}
            for agent in par.agents:
                i = index[agent]
                answer = answers.get(self.node_of(i, agent))
                action, told = self.action(i, answer is not None, None if answer is None else answer.value, masks[i])
                if action is not None:
                    actions[agent] = action
                if told is not None:
                    self.told[agent] = told
            obs, rewards, terms, truncs, infos = par.step(actions)
            view = StepView(obs, infos, rewards, terms, truncs, self.episode_over(), view.t + 1)
            self.accumulate(totals, rewards, infos)
            self.stepped()
        return {**totals, "t": view.t, "last_infos": view.infos}


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
