"""InventoryConfig: the MABIM scenario knobs (eSpark paper, Table 10; MABIM's reward2 and default costs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_node.learners.settings import PPOConfig
from agent_node.overrides import Overrides
from scenarios.espark.masker import ExplorationSpec
from scenarios.espark.settings import ACCUMULATED_EPISODES, ESparkSettings

# MABIM's 34 `demand_mean_discrete` multiples (eSpark paper, Fig. 2: multiples of the mean demand): action a orders
# floor(ACTION_MULTIPLES[a] * mean demand).
ACTION_MULTIPLES = (
    0.00,
    0.16,
    0.33,
    0.40,
    0.45,
    0.50,
    0.55,
    0.60,
    0.66,
    0.83,
    1.00,
    1.16,
    1.33,
    1.50,
    1.66,
    1.83,
    2.00,
    2.16,
    2.33,
    2.50,
    2.66,
    2.83,
    3.00,
    3.16,
    3.33,
    3.50,
    3.66,
    3.83,
    4.00,
    5.00,
    6.00,
    7.00,
    9.00,
    12.00,
)
N_ACTIONS = len(ACTION_MULTIPLES)  # 34

# Capacity per echelon = #SKU x this (eSpark paper, Table 10): Standard x100, Lower x50, Lowest x25.
CAPACITY_PER_SKU = {"standard": 100, "lower": 50, "lowest": 25}


class DemandConfig(BaseModel):
    """Synthetic customer demand (MABIM's data is not public, docs/espark.md): seasonal negative binomial per
    SKU; formula in demand.py."""

    model_config = ConfigDict(extra="forbid")
    days: int = Field(1095, gt=0)  # series length per dataset (about the 3 years of MABIM's training window)
    base_min: float = Field(2.0, gt=0)  # per-SKU base level b_j ~ log-uniform[base_min, base_max] units/day
    base_max: float = Field(20.0, gt=0)  # upper end of the base level, units/day
    trend_min: float = -0.3  # per-SKU linear trend g_j ~ U[trend_min, trend_max], relative change per year
    trend_max: float = 0.5  # upper end of the trend
    weekly_amp_max: float = Field(0.3, ge=0, lt=1)  # a_j ~ U[0, weekly_amp_max], period 7 days
    annual_amp_max: float = Field(0.4, ge=0, lt=1)  # s_j ~ U[0, annual_amp_max], period 365 days
    dispersion: float = Field(5.0, gt=0)  # negative-binomial shape k: variance = mu + mu^2 / k

    @model_validator(mode="after")
    def _ordered(self) -> "DemandConfig":
        if self.base_min > self.base_max or self.trend_min > self.trend_max:
            raise ValueError("base_min <= base_max and trend_min <= trend_max are required")
        return self


class InventoryConfig(BaseModel):
    """One MABIM scenario: #SKU, #echelon, capacity variant, costs (reward2 defaults), horizon, seeds."""

    model_config = ConfigDict(extra="forbid")
    skus: int = Field(100, ge=1)  # the paper runs 100 and 500
    echelons: int = Field(1, ge=1, le=3)  # warehouse 0 faces customers, echelons-1 orders from the super vendor
    # capacity of each echelon: #SKU x 100 (standard), 50 (lower) or 25 (lowest) units
    capacity: Literal["standard", "lower", "lowest"] = "standard"
    horizon: int = Field(100, gt=0)  # steps (days) per episode
    lookback: int = Field(21, ge=1)  # window of the mean demand that actions multiply
    warmup_days: int = Field(21, ge=0)  # steps of "replenish_by_last_demand" run inside reset()
    seed: int = 0  # dataset seed: demand series, prices, lead times; reset(seed) only picks the episode window
    # Lead times (vlt) per (echelon, SKU) ~ U{vlt_min..vlt_max} (our choice: MABIM's real SKU data is not public).
    vlt_min: int = Field(1, ge=0)
    vlt_max: int = Field(7, ge=0)  # longest lead time, days
    # Prices (our choice): super-vendor price c_j ~ U[cost_min, cost_max], margin m_j ~ U[margin_min, margin_max];
    # echelon i buys at the price of echelon i+1 (the top at c_j) and sells at cost * (1 + m_j).
    cost_min: float = Field(5.0, gt=0)
    cost_max: float = Field(50.0, gt=0)  # highest super-vendor price
    margin_min: float = Field(0.1, ge=0)  # lowest margin, a share of the cost
    margin_max: float = Field(0.5, ge=0)  # highest margin
    init_stock_days: float = Field(3.0, ge=0)  # initial stock = days x mean demand, scaled down to fit capacity
    # reward2 constants (MABIM's reward2 and its default costs); volume is 1 for every SKU.
    unit_order_cost: float = 10.0  # fixed cost of a day's order of one SKU (any quantity)
    basic_holding_cost: float = 0.001  # cost per unit in stock per day
    unit_storage_cost: float = 0.002  # cost per unit of volume in stock per day (volume 1)
    backlog_ratio: float = 0.1  # share of the margin of unmet demand charged as backlog cost
    overflow_cost_ratio: float = 0.5  # share of its price charged for each arrived unit that does not fit the capacity
    demand: DemandConfig = Field(default_factory=DemandConfig)  # the synthetic customer demand

    @model_validator(mode="after")
    def _check(self) -> "InventoryConfig":
        if self.vlt_min > self.vlt_max or self.cost_min > self.cost_max or self.margin_min > self.margin_max:
            raise ValueError("vlt, cost and margin ranges need min <= max")
        if self.demand.days < self.warmup_days + self.horizon:
            raise ValueError("demand.days must cover warmup_days + horizon")
        return self

    @property
    def capacity_per_echelon(self) -> int:
        """W_i, the same for every echelon (eSpark paper, Table 10)."""
        return self.skus * CAPACITY_PER_SKU[self.capacity]


class InventoryWorld(BaseModel):
    """[world] of kind "inventory": one agent process per warehouse (echelon) hosting its N SKUs' shared policy."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["inventory"] = "inventory"  # picks the world kind (scenarios/kinds.py)
    # the MABIM scenario: SKUs, echelons, capacity, costs, demand
    env: InventoryConfig = Field(default_factory=InventoryConfig)
    episodes: int = Field(..., ge=0)  # training episodes (0: test only, e.g. from algo.init_weights)
    first_episode: int = Field(1, ge=1)  # number (and window seed) of the first one: eSpark's iterations continue
    test_episodes: int = Field(3, ge=0)  # greedy, unmasked, on the test split (the last days of the series)
    eval_episodes: int = Field(0, ge=0)  # greedy, unmasked, on fresh training seeds after training (eSpark's selection)
    eval_every: int = Field(0, ge=0)  # ... and every this many training episodes (eSpark's validation checkpoints)
    update_every: int = Field(ACCUMULATED_EPISODES, ge=1)  # episodes accumulated per PPO update (paper, Table 13)
    update_deadline_s: float = Field(300.0, gt=0)  # how long the world waits for the agents' PPO updates, s
    exploration: ExplorationSpec = Field(default_factory=ExplorationSpec)  # training-time masks


class InventoryAlgo(BaseModel):
    """[algo]: the warehouses' learner: IPPO (with world.exploration's masks); "random_pruning" adds random training
    masks (eSpark paper, App. D.3.1); "espark" runs the eSpark loop (coordinator/espark/loop.py) with the settings
    in `espark`."""

    model_config = ConfigDict(extra="forbid")
    # ippo: plain IPPO; random_pruning: with random training masks; espark: the eSpark loop
    method: Literal["ippo", "espark", "random_pruning"] = "ippo"
    ppo: Overrides(PPOConfig) = Field(default_factory=PPOConfig)  # the fields set override the run's PPO settings
    torch_threads: int = Field(1, ge=1)  # PyTorch threads of each agent process
    init_weights: str | None = None  # a folder of agentK.pt checkpoints to start from
    espark: ESparkSettings = Field(default_factory=ESparkSettings)  # the eSpark loop (method = "espark")
