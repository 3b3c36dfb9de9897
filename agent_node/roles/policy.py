"""The policy role: act with a trained, exported policy (numpy only: what runs on a device), no learning."""

from __future__ import annotations

import io

from pydantic import Field

from protocols.messages import Action, Message

from ..portable_policy import PortablePolicy
from .base import Role, RoleSettings


class PolicySettings(RoleSettings):
    """Where the policy comes from: a file on this device, or the bytes the coordinator sent at registration."""

    name: str = "policy"
    policy_file: str | None = None  # `netmarl node --policy FILE` (takes precedence)
    policy_npz: bytes | None = Field(None, repr=False)  # the exported file's bytes, from the coordinator
    metrics_every: int = Field(100, ge=1)  # observations between status reports


class PolicyRole(Role):
    """Deterministic action bound * tanh(mu) of the portable policy for every observation."""

    name = "policy"
    Settings = PolicySettings

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = PolicySettings.model_validate(settings)
        if self.cfg.policy_file:
            self.policy, self.source = PortablePolicy.load(self.cfg.policy_file), self.cfg.policy_file
        elif self.cfg.policy_npz:
            self.policy, self.source = PortablePolicy.load(io.BytesIO(self.cfg.policy_npz)), "coordinator"
        else:
            raise ValueError("the policy role needs a policy: --policy FILE, or one sent by the coordinator")
        self.steps = 0
        self.action_sum = 0.0

    def on_observation(self, msg: Message):
        body = msg.body
        if body.done:
            return Action(step=body.step), None
        obs = msg.arrays.get("obs")
        if obs is None or obs.shape != (self.policy.obs_dim,):
            raise ValueError(f"policy role expects an 'obs' array of shape ({self.policy.obs_dim},)")
        a = float(self.policy.act(obs)[0])
        self.steps += 1
        self.action_sum += a
        if self.steps % self.cfg.metrics_every == 0:
            self.ctx.send_metrics("policy_node", self.metrics())
        return Action(step=body.step, value=a), None

    def metrics(self) -> dict:
        return {
            "steps": self.steps,
            "mean_action": self.action_sum / self.steps if self.steps else None,
            "policy": self.source,
            "params": self.policy.n_params(),
        }
