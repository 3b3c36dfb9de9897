"""The learners' hyperparameters as pydantic models, without torch: PPO (eSpark's IPPO, RELED's base), RELED's
hybrid PPO and SAC (RSM-MASAC), and the constants their defaults come from. The coordinator validates and plans a
run with them and never loads torch; the learners (ppo.py, sac.py, reled/hybrid_ppo.py) import them from here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ENTROPY_BETA = 0.01  # entropy weight (RELED's Eq. 31 beta; neither paper gives a value: docs/reled.md, RL-13)
GAMMA = 0.99  # SAC's discount gamma (RSM-MASAC, Table IV)
ACTOR_DIM = 68_098  # d for the reference code's 6-256-256-(mu, sigma) SAC actor
CPM_PAYLOAD_BYTES = 4480  # one Collective Perception Message payload (RSM-MASAC paper, Sec. V-B)


class PPOConfig(BaseModel):
    """Hyperparameters of one PPO agent (defaults: docs/reled.md, RL-13; the eSpark plans set their own)."""

    model_config = ConfigDict(extra="forbid")

    obs_dim: int = 10  # observation width (routing's; the signals and inventory kinds set their own)
    n_actions: int = 4  # discrete actions (routing: the roads out of a junction; signals and inventory set their own)
    hidden: int = 128  # 2 x hidden tanh MLPs for the policy and each critic
    lr: float = 3e-4  # Adam's learning rate
    gamma: float = 0.99  # discount factor
    clip_eps: float = 0.2  # PPO's clip range of the probability ratio
    beta: float = ENTROPY_BETA  # entropy weight
    update_epochs: int = 10  # passes over the gathered data per update
    minibatch: int = Field(64, ge=0)  # 0: the whole batch, one gradient step per epoch (eSpark's released learner)
    max_grad_norm: float = 0.5  # gradient-norm clip, per network
    vf_coef: float = 0.5  # weight of the value losses in the loss
    norm_adv: bool = True  # normalise the agent's advantages (mean 0, sd 1) before the epochs
    gae_lambda: float | None = None  # None: truncated Monte-Carlo return (RELED's Eq. 26); a float: GAE(lambda)
    # eSpark's released action selector ("multinomial" with an epsilon floor): a training action is drawn from
    # (1 - eps) pi + eps Uniform(selectable), eps falling linearly from explore_eps_start to explore_eps_finish
    # over explore_eps_steps training decisions, then flat; PPO's old log-probability is this behaviour's (the
    # released learner's saved probs), the new one the plain masked policy's. start = 0 (default): plain sampling
    explore_eps_start: float = Field(0.0, ge=0, le=1)
    explore_eps_finish: float = Field(0.0, ge=0, le=1)  # the epsilon floor's final value
    # training decisions over which it falls from explore_eps_start to explore_eps_finish
    explore_eps_steps: int = Field(1, ge=1)
    init_seed: int = 0  # network initialisation (same value -> identical initial networks)
    seed: int = 0  # action sampling and minibatch shuffling


class HybridPPOConfig(PPOConfig):
    """The masked PPO's settings plus RELED's (docs/reled.md, RL-4 and RL-13, where the paper gives none)."""

    # normalise the demonstration's advantages too (the paper says nothing). Off (default): normalising one
    # demonstration's advantages gives its later decisions (smaller return-to-go) negative ones, so the expert loss
    # would push the expert's actions DOWN near the destination and un-learn the demonstration (measured: the policy
    # stopped arriving at all)
    norm_expert_adv: bool = False
    n_junctions: int = 2  # junction IDs are divided by (n_junctions - 1), docs/reled.md RL-4
    junction_ids: bool = True  # the routing observation's layout; False: observations are used as they come


class SACConfig(BaseModel):
    """SAC hyperparameters; defaults are the paper's Table IV unless noted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    obs_dim: int = Field(6, gt=0)  # s = [x, v, x_behind, v_behind, x_ahead, v_ahead] (Sec. VI-A)
    act_dim: int = Field(1, gt=0)  # one scalar acceleration (Sec. VI-A)
    hidden: int = Field(256, gt=0)  # 2 x 256 ReLU, actor and critics (the reference code)
    action_bound: float = Field(3.0, gt=0)  # scenario acceleration bound: 3 Figure-8, 1.5 Merge (Table III)
    actor_lr: float = Field(4e-5, gt=0)  # eta_pi (Table IV)
    critic_lr: float = Field(3e-4, gt=0)  # eta_Q (Table IV)
    alpha_lr: float = Field(3e-4, gt=0)  # eta_alpha (Table IV)
    gamma: float = Field(GAMMA, ge=0, lt=1)  # 0.99 (Table IV)
    tau: float = Field(1e-3, gt=0, le=1)  # target smoothing varrho (Table IV)
    batch_size: int = Field(256, gt=0)  # Phi (Table IV)
    buffer_size: int = Field(100_000, gt=0)  # |D| = 1e5, FIFO (Table IV)
    learning_starts: int = Field(512, ge=0)  # update only once len(buffer) > 2 * batch (the reference code; R-A7)
    policy_delay: int = Field(10, gt=0)  # e: actor/alpha/targets every e critic updates (Sec. III-A1); host's call
    target_entropy: float | None = None  # None -> -act_dim = -1 per agent (eq. 9); the code's quirk is -9
    init_alpha: float = Field(0.01, gt=0)  # alpha_0 (the reference code)
    grad_clip: float | None = Field(0.5, gt=0)  # grad-norm clip on actor and both critics (later reference code)
    init_seed: int = 0  # shared seed: identical initial weights on every agent (R-A17)
    seed: int = 0  # per-agent seed: action noise and reparameterisation noise
    # Adam's fused kernel: updates 3-6 % cheaper, but its sums round differently (runs agree to about 1e-9, not
    # bit for bit); the default's multi-tensor Adam computes exactly what the per-tensor loop computes
    fused_adam: bool = False
    # the space SAC's entropy (eq. 9's target, the soft value, the actor's loss) is measured in: "action", the
    # agent's own accelerations in [-bound, bound] (the paper: H_bar = -dim A of its action space, as SAC
    # defines it); "unit", the tanh output in [-1, 1] before scaling, as the reference code's log-probs are
    # (they leave out -log(bound)): the entropy is lower by dim A * log(bound), so alpha is pushed up harder
    entropy_space: Literal["action", "unit"] = "action"

    @property
    def entropy_target(self) -> float:
        return float(-self.act_dim) if self.target_entropy is None else self.target_entropy
