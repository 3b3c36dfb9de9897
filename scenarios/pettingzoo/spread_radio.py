"""MPE simple_spread with a radio (docs/pettingzoo.md): where its agents are, for the medium, and an example of a
role of your own whose view of the other agents is what they broadcast, so the radio's losses reach its learning."""

from __future__ import annotations

from typing import Literal

import numpy as np

from agent_node.roles.ippo import IppoRole, IppoSettings
from protocols.messages import Act, Message, Payload

METRES_PER_UNIT = 100.0  # MPE's world is about 2 units across: 200 m on the radio


def positions(env) -> dict[str, tuple[float, float]]:
    """Every live agent's (x, y) in metres (world.positions = "scenarios.pettingzoo.spread_radio:positions")."""
    return {a.name: tuple(METRES_PER_UNIT * a.state.p_pos) for a in env.unwrapped.world.agents}


class RadioPositionsSettings(IppoSettings):
    """The ippo role's settings (ppo must give obs_dim = 6 N and n_actions = 5 for simple_spread's N agents), and
    where the other agents' slots of the observation come from: "radio", the last position each one broadcast;
    "env", what the environment gives (the radio is not listened to: the upper bound); "none", zeros (the lower
    bound)."""

    name: str = "scenarios.pettingzoo.spread_radio:RadioPositionsRole"
    source: Literal["radio", "env", "none"] = "radio"


class RadioPositionsRole(IppoRole):
    """IPPO for simple_spread whose knowledge of the other agents comes over the radio. Each step it broadcasts its
    own position (a Payload tagged "pos", the array "data" = (x, y) in MPE units), and the observation's other-agent
    slots (relative positions, in agent order) hold the last position heard from each, relative to its own: one
    step old when nothing is lost, older (or zero, never heard this episode) as the radio loses more."""

    name = "radio_positions"
    Settings = RadioPositionsSettings
    COUNTS = ("decisions", "updates", "heard", "refused")

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        n = self.ppo.cfg.obs_dim // 6  # simple_spread: vel 2, pos 2, landmarks 2N, others 2(N-1), comm 2(N-1)
        if self.ppo.cfg.obs_dim != 6 * n or n < 2:
            raise ValueError(f"{self.name}: ppo.obs_dim {self.ppo.cfg.obs_dim} is not simple_spread's 6 N")
        self.me = int(ctx.node_id.removeprefix("agent"))
        self.others = [j for j in range(n) if j != self.me]  # the order of the observation's other-agent slots
        self.slots = slice(4 + 2 * n, 4 + 2 * n + 2 * (n - 1))
        self.heard: dict[int, tuple[np.ndarray, float]] = {}  # agent index -> (its last position, sent at t_sim)
        self.ages: list[float] = []  # at each decision, per other agent: how old what it knows is (s); inf: nothing

    def on_observation(self, msg: Message):
        body, obs = msg.body, msg.arrays.get("obs")
        if isinstance(body.info, Act) and obs is not None and obs.shape == (self.ppo.cfg.obs_dim,):
            own = np.array(obs[2:4], np.float32)
            if body.done:
                self.heard = {}
            else:
                self.ctx.radio.broadcast(Payload(tag="pos"), {"data": own})
            if self.cfg.source != "env":
                view = np.array(obs, np.float32)
                view[self.slots] = np.concatenate(
                    [self.heard[j][0] - own if j in self.heard else [0.0, 0.0] for j in self.others]
                )
                msg.arrays["obs"] = view
                if not body.done:
                    now = self.ctx.t_sim
                    self.ages += [now - self.heard[j][1] if j in self.heard else np.inf for j in self.others]
        return super().on_observation(msg)

    def on_radio(self, msg: Message) -> None:
        """A neighbour's position (listened to with source = "radio"); anything else, or from no agent of this run, is
        counted and dropped."""
        if self.cfg.source != "radio":
            return
        data, src = msg.arrays.get("data"), msg.env.src
        sender = int(src.removeprefix("agent")) if src.removeprefix("agent").isdigit() else -1
        if (
            not isinstance(msg.body, Payload)
            or msg.body.tag != "pos"
            or sender not in self.others
            or data is None
            or data.shape != (2,)
            or not np.isfinite(data).all()
        ):
            self.counts["refused"] += 1
            return
        self.heard[sender] = (np.asarray(data, np.float32), msg.env.t_sim)
        self.counts["heard"] += 1

    def metrics(self) -> dict:
        """The counts, and how stale the view of the others was: the mean age of what it knew (s) and the share of
        decisions that knew nothing of an agent yet this episode."""
        ages = np.asarray(self.ages)
        known = ages[np.isfinite(ages)]
        return {
            **super().metrics(),
            "mean_age_s": float(known.mean()) if known.size else None,
            "never_heard": float(np.mean(~np.isfinite(ages))) if ages.size else None,
        }
