"""Scenario files: TOML loaded into pydantic models, with `--set key=value` overrides and plain errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from netsim.config import NetsimConfig
from protocols.mqtt import MqttSettings
from protocols.security import is_loopback

from .cav.config import CavWorld
from .errors import ConfigError  # noqa: F401 - re-exported: callers import it from here
from .figure8 import max_vehicles
from .inventory.config import InventoryAlgo, InventoryWorld
from .routing.config import RoutingAlgo, RoutingWorld
from .signals.config import SignalAlgo, SignalWorld
from .warehouse.config import WarehouseWorld


class RunConfig(BaseModel):
    """Run-wide settings: length, seed, output and what to do when a node fails."""

    model_config = ConfigDict(extra="forbid")
    name: str = "run"
    seed: int = 0
    steps: int = Field(600, gt=0)
    out_dir: str = "runs"
    on_node_failure: Literal["restart", "continue", "stop"] = "restart"
    max_restarts: int = Field(2, ge=0)
    step_deadline_s: float = Field(1.0, gt=0)
    heartbeat_timeout_s: float = Field(2.0, gt=0)
    register_timeout_s: float = Field(60.0, gt=0)
    launch_batch: int = Field(64, ge=1)  # agent processes started at a time, each batch registered first
    coordinator_bind: str = "tcp://127.0.0.1:*"  # a fixed port lets nodes on other hosts join
    progress: bool = True


class Figure8World(BaseModel):
    """The figure-eight road in SUMO: simulator backend, how many vehicles, how many are agents."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["figure8"] = "figure8"
    backend: Literal["libsumo", "traci"] = "libsumo"
    gui: bool = False
    step_length: float = Field(0.1, gt=0)
    vehicles: int = Field(14, ge=1)
    agents: int = Field(14, ge=0)
    ring_radius: float = Field(30.0, gt=0)
    speed_limit: float = Field(30.0, gt=0)


def _world_kind(value: Any) -> str:
    return value.get("kind", "figure8") if isinstance(value, dict) else getattr(value, "kind", "figure8")


WORLD_KINDS = ("figure8", "warehouse", "cav", "routing", "signals", "inventory")
WorldConfig = Annotated[
    Union[
        Annotated[Figure8World, Tag("figure8")],
        Annotated[WarehouseWorld, Tag("warehouse")],
        Annotated[CavWorld, Tag("cav")],
        Annotated[RoutingWorld, Tag("routing")],
        Annotated[SignalWorld, Tag("signals")],
        Annotated[InventoryWorld, Tag("inventory")],
    ],
    Discriminator(
        _world_kind,
        custom_error_type="world_kind",
        custom_error_message=f"world.kind must be one of: {', '.join(WORLD_KINDS)}",
    ),
]


class MqttConfig(MqttSettings):
    """[mqtt]: the run also starts a bridge (coordinator/mqtt_bridge.py) so that nodes which reach it only
    through this MQTT broker can join with `netmarl node --mqtt URL --fleet NAME`. Fields: broker
    (mqtt://HOST:PORT or mqtts://), fleet, username, password, tls_ca, tls_cert, tls_key, tls_insecure,
    keepalive_s, max_queued, stale_s (protocols/mqtt.py), and bind_host: the interface of the bridge's
    stand-in inboxes, which the run's own processes connect to."""

    bind_host: str = Field("127.0.0.1", pattern=r"^[A-Za-z0-9_.:\[\]-]{1,200}$")


class SecurityConfig(BaseModel):
    """[security]: CURVE encryption and authentication on every ZeroMQ socket of the run."""

    model_config = ConfigDict(extra="forbid")
    # auto: on for every run (its processes prove membership with per-run keys), except an [mqtt] run on
    # loopback, whose bridge does not speak CURVE; off: no proof at all (any local process may join or speak
    # for the run's processes), said loudly at the start
    curve: Literal["auto", "on", "off"] = "auto"
    keys_dir: str | None = None  # holds coordinator.key and coordinator.key_secret; unset: a fresh pair per run
    allow_dir: str | None = None  # public keys NODE_ID.key of the nodes that may join by hand (also RUN/allow/)

    def enabled(self, coordinator_bind: str, mqtt: bool = False) -> bool:
        """Whether the run uses CURVE."""
        return self.curve == "on" or (self.curve == "auto" and not (mqtt and is_loopback(coordinator_bind)))


class ScenarioConfig(BaseModel):
    """A whole scenario file: [run], [world] (its `kind` picks the environment), [netsim], and the
    agents' [role] (figure-eight) or the algorithm's [algo] table (warehouse)."""

    model_config = ConfigDict(extra="forbid")
    run: RunConfig = Field(default_factory=RunConfig)
    world: WorldConfig = Field(default_factory=Figure8World)
    netsim: NetsimConfig = Field(default_factory=NetsimConfig)
    role: dict[str, Any] = Field(default_factory=lambda: {"name": "beacon"})
    algo: dict[str, Any] = Field(default_factory=dict)
    mqtt: MqttConfig | None = None
    security: SecurityConfig = Field(default_factory=SecurityConfig)


def parse_value(text: str) -> Any:
    """A --set value as TOML (numbers, booleans, quoted strings, arrays), else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `dotted.key=value` to nested dict data."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. netsim.range_m=120")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {part!r} is not a table")
        node = child
    node[leaf] = parse_value(value.strip())


def _explain(err: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid configuration"]
    for e in err.errors():
        parts = [str(p) for p in e["loc"]]
        if parts[:1] == ["world"] and parts[1:2] and parts[1] in WORLD_KINDS:
            del parts[1]  # the union's tag, not a key the user wrote
        loc = ".".join(parts)
        lines.append(
            f"  {loc}: {e['msg']}"
            + (f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else "")
        )
    return "\n".join(lines)


def validate_role(cfg: ScenarioConfig, where: str) -> None:
    """Check the [role] table against the role's own settings model."""
    from agent_node.roles import load_role

    name = cfg.role.get("name", "beacon")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: role.name: must be a string, got {name!r}")
    try:
        role = load_role(name)
    except ValueError as err:
        raise ConfigError(f"{where}: role.name: {err}") from None
    try:
        role.Settings.model_validate(cfg.role)
    except ValidationError as err:
        raise ConfigError(_explain(err, where).replace("\n  ", "\n  role.")) from None


def check_cav(cfg: ScenarioConfig, where: str) -> None:
    """A CAV scenario takes its learner settings from [algo] (the cav role's settings), not [role]."""
    from agent_node.roles.cav import CavSettings

    if cfg.role != {"name": "beacon"}:
        raise ConfigError(f"{where}: role: a cav world takes its agents' settings from [algo], not [role]")
    try:
        CavSettings.model_validate({"name": "cav", **cfg.algo})
    except ValidationError as err:
        raise ConfigError(_explain(err, where).replace("\n  ", "\n  algo.")) from None
    if cfg.world.scenario == "figure8" and cfg.world.n_agents > cfg.world.vehicles:
        raise ConfigError(f"{where}: world.agents ({cfg.world.n_agents}) exceeds world.vehicles ({cfg.world.vehicles})")
    step = cfg.world.step_length
    timeout = cfg.algo.get("round_timeout_s", 0.5)
    if isinstance(timeout, (int, float)) and timeout < 2 * step - 1e-9:
        raise ConfigError(
            f"{where}: algo.round_timeout_s: must be at least two steps ({2 * step:g} s): answers "
            "sent in the step after a request are only certain to be in by then"
        )


def check_radio_free_world(cfg: ScenarioConfig, where: str, algo_model: type[BaseModel], agents: str) -> Any:
    """A world whose agents talk to it only (no radio), configured by [algo]: that table validated, [role]
    refused, netsim.mode "direct" required; returns the validated [algo]."""
    if "role" in cfg.model_fields_set:
        raise ConfigError(f"{where}: role: a {cfg.world.kind} world's agents are {agents}; set them in [algo]")
    try:
        algo = algo_model.model_validate(cfg.algo)
    except ValidationError as err:
        raise ConfigError(_explain(err, where).replace("\n  ", "\n  algo.")) from None
    if cfg.netsim.mode != "direct":
        raise ConfigError(
            f"{where}: netsim.mode: {agents} exchange nothing over the radio (everything travels "
            'between the world and the agents), so set netsim.mode = "direct"'
        )
    return algo


def check_routing(cfg: ScenarioConfig, where: str) -> None:
    """A routing scenario: [algo] holds the method, PPO and SED settings."""
    algo = check_radio_free_world(cfg, where, RoutingAlgo, "RELED's vehicles")
    if algo.alpha_mode != "paper" and algo.alpha_fixed is None:
        raise ConfigError(f"{where}: algo.alpha_fixed: alpha_mode {algo.alpha_mode!r} needs a weight (0.2 or 0.5)")


def check_init_weights(algo, where: str) -> None:
    """eSpark's worlds start from a folder of checkpoints when algo.init_weights names one."""
    if algo.init_weights is not None and not Path(algo.init_weights).is_dir():
        raise ConfigError(f"{where}: algo.init_weights: no folder {algo.init_weights!r} (of agentK.pt checkpoints)")


def check_signals(cfg: ScenarioConfig, where: str) -> None:
    """A traffic-signal scenario: [algo] holds the lights' learner."""
    check_init_weights(check_radio_free_world(cfg, where, SignalAlgo, "the traffic lights"), where)
    if cfg.world.yellow_s >= cfg.world.delta_s:
        raise ConfigError(f"{where}: world.yellow_s must be shorter than world.delta_s")


def check_inventory(cfg: ScenarioConfig, where: str) -> None:
    """An inventory (MABIM) scenario: [algo] holds the warehouses' learner."""
    check_init_weights(check_radio_free_world(cfg, where, InventoryAlgo, "the warehouses"), where)


def load_scenario(path: str | Path, overrides: list[str] = (), seed: int | None = None) -> ScenarioConfig:
    """Read, override and validate a scenario file; raise ConfigError naming what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the scenario file: {err}") from None
    for assignment in overrides:
        apply_override(data, assignment)
    if seed is not None:
        data.setdefault("run", {})["seed"] = seed
    try:
        cfg = ScenarioConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(err, str(path))) from None
    if cfg.mqtt is not None and cfg.security.enabled(cfg.run.coordinator_bind, mqtt=True):
        raise ConfigError(
            f"{path}: mqtt: the MQTT bridge does not speak CURVE yet, so [mqtt] cannot be combined with "
            "CURVE (security.curve, on by default for a non-loopback run.coordinator_bind); secure the "
            'broker path with TLS and per-device passwords and set security.curve = "off"'
        )
    check = {"cav": check_cav, "routing": check_routing, "signals": check_signals, "inventory": check_inventory}.get(
        cfg.world.kind
    )
    if cfg.world.kind == "warehouse":
        from .warehouse.checks import check_warehouse as check
    if check is not None:
        check(cfg, str(path))
        return cfg
    if cfg.algo:
        raise ConfigError(f"{path}: algo: the figure8 world takes no [algo] table")
    if cfg.world.agents > cfg.world.vehicles:
        raise ConfigError(f"{path}: world.agents ({cfg.world.agents}) exceeds world.vehicles ({cfg.world.vehicles})")
    if cfg.world.vehicles > (room := max_vehicles(cfg.world.ring_radius)):
        raise ConfigError(
            f"{path}: world.vehicles: {cfg.world.vehicles} vehicles do not fit on a figure-eight of "
            f"ring_radius {cfg.world.ring_radius:g} m (at most {room})"
        )
    validate_role(cfg, str(path))
    return cfg
