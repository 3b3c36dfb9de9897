"""Scenario files: TOML loaded into pydantic models, with `--set key=value` overrides and plain errors."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from netsim.config import NetsimConfig
from protocols.mqtt import MqttSettings
from protocols.security import is_loopback

from .errors import ConfigError
from .kinds import DEFAULT_KIND, KINDS, world_kind


class RunConfig(BaseModel):
    """Run-wide settings: length, seed, output and what to do when a node fails."""

    model_config = ConfigDict(extra="forbid")
    name: str = "run"  # names the run folder (`out_dir/name-YYYYmmdd-HHMMSS`) and the progress bar
    seed: int = 0  # seed of the whole run (world, channel, agents); `--seed` overrides it
    # world steps of the figure8 and warehouse kinds; the other kinds count their own episodes or epochs
    steps: int = Field(600, gt=0)
    out_dir: str = "runs"  # folder the run folders go under (`--out` names one folder instead)
    # when a process other than the world fails: restart it (up to max_restarts), go on without it, or stop the run
    on_node_failure: Literal["restart", "continue", "stop"] = "restart"
    max_restarts: int = Field(2, ge=0)  # restarts of each failed process before the run goes on without it
    # wall-clock wait per step for the agents' actions and the medium's confirmation, s; a late agent's default action
    # is used
    step_deadline_s: float = Field(1.0, gt=0)
    # s without a heartbeat before a remote node is marked down (a local process: 5 times this, then killed as hung)
    heartbeat_timeout_s: float = Field(2.0, gt=0)
    register_timeout_s: float = Field(60.0, gt=0)  # s for every process to register at the start; past it the run fails
    launch_batch: int = Field(64, ge=1)  # agent processes started at a time, each batch registered first
    coordinator_bind: str = "tcp://127.0.0.1:*"  # a fixed port lets nodes on other hosts join
    progress: bool = True  # show a progress bar (`--no-progress` turns it off)
    tensorboard: bool = True  # also write the metrics as TensorBoard event files (RUN/tensorboard/)
    live: bool = True  # write live.jsonl: a frame a second of positions, links and health (the dashboard's feed)
    # "ray": every process (world, medium, agents) a Ray actor placed by Ray's scheduler (docs/cluster.md; the
    # optional [ray] extra); "local": this machine's fork server
    launcher: Literal["local", "ray"] = "local"
    # the Ray cluster to join ("auto", "HOST:PORT"); None: a Ray instance on this machine for the run
    ray_address: str | None = None
    ray_cpus: float = Field(0.1, ge=0)  # CPUs Ray reserves for each process
    ray_placement: Literal["spread", "pack"] = "spread"  # processes over as many hosts as possible, or packed
    # a custom resource that only hosts able to run the world have (SUMO installed), e.g. "sumo"; None: any host
    ray_world_resource: str | None = Field(None, pattern=r"^[A-Za-z_][\w.-]{0,63}$")


class MqttConfig(MqttSettings):
    """[mqtt]: the run also starts a bridge (coordinator/mqtt_bridge.py) so that nodes which reach it only
    through this MQTT broker can join with `netmarl node --mqtt URL --fleet NAME`. Fields: broker
    (mqtt://HOST:PORT or mqtts://), fleet, username, password, tls_ca, tls_cert, tls_key, tls_insecure,
    keepalive_s, max_queued, stale_s (protocols/mqtt.py), and bind_host: the interface of the bridge's
    stand-in inboxes, which the run's own processes connect to."""

    # interface of the bridge's stand-in inboxes, which the run's own processes connect to
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
    """A whole scenario file: [run], [world] (its `kind` picks the world kind, scenarios/kinds.py), [netsim],
    the agents' [role] (the figure8 kind) or the kind's [algo] table, [mqtt] and [security]. Each kind's
    scenario is a subclass with its own typed `world` and `algo` (scenario_model)."""

    model_config = ConfigDict(extra="forbid")
    run: RunConfig = Field(default_factory=RunConfig)
    world: Any = None
    netsim: NetsimConfig = Field(default_factory=NetsimConfig)
    role: dict[str, Any] = Field(default_factory=lambda: {"name": "beacon"})
    algo: Any = None
    mqtt: MqttConfig | None = None
    security: SecurityConfig = Field(default_factory=SecurityConfig)


@cache
def scenario_model(kind: str) -> type[ScenarioConfig]:
    """The scenario model of a world kind: ScenarioConfig with the kind's [world] and [algo] tables."""
    spec = world_kind(kind)
    algo = (spec.algo, Field(default_factory=spec.algo)) if spec.algo else (dict[str, Any], Field(default_factory=dict))
    return create_model(
        f"{kind.capitalize()}Scenario",
        __base__=ScenarioConfig,
        __doc__=ScenarioConfig.__doc__,
        world=(spec.world, Field(default_factory=spec.world)),
        algo=algo,
    )


def parse_scenario(data: dict, where: str) -> ScenarioConfig:
    """Validate a scenario's data with its kind's model; ConfigError names every wrong field."""
    world = data.get("world", {})
    kind = world.get("kind", DEFAULT_KIND) if isinstance(world, dict) else DEFAULT_KIND
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(
            f"{where}: invalid configuration\n  world.kind: must be one of: {', '.join(KINDS)} (got {kind!r})"
        )
    try:
        return scenario_model(kind).model_validate(data)
    except ValidationError as err:
        raise ConfigError(explain(err, where)) from None


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


def explain(err: ValidationError, where: str, prefix: str = "") -> str:
    """A validation error as lines `  table.field: message (got value)`; prefix: the table validated."""
    lines = [f"{where}: invalid configuration"]
    for e in err.errors():
        loc = prefix + ".".join(str(p) for p in e["loc"])
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
        raise ConfigError(explain(err, where, "role.")) from None


def check_radio_free(cfg: ScenarioConfig, where: str, agents: str) -> None:
    """A world whose agents talk to it only (no radio), configured by [algo]: [role] refused, netsim.mode
    "direct" required."""
    if "role" in cfg.model_fields_set:
        raise ConfigError(f"{where}: role: a {cfg.world.kind} world's agents are {agents}; set them in [algo]")
    if cfg.netsim.mode != "direct":
        raise ConfigError(
            f"{where}: netsim.mode: {agents} exchange nothing over the radio (everything travels "
            'between the world and the agents), so set netsim.mode = "direct"'
        )


def check_init_weights(algo, where: str) -> None:
    """eSpark's worlds start from a folder of checkpoints when algo.init_weights names one."""
    if algo.init_weights is not None and not Path(algo.init_weights).is_dir():
        raise ConfigError(f"{where}: algo.init_weights: no folder {algo.init_weights!r} (of agentK.pt checkpoints)")


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
    cfg = parse_scenario(data, str(path))
    if cfg.mqtt is not None and cfg.security.enabled(cfg.run.coordinator_bind, mqtt=True):
        raise ConfigError(
            f"{path}: mqtt: the MQTT bridge does not speak CURVE yet, so [mqtt] cannot be combined with "
            "CURVE (security.curve, on by default for a non-loopback run.coordinator_bind); secure the "
            'broker path with TLS and per-device passwords and set security.curve = "off"'
        )
    check = world_kind(cfg.world.kind).check
    if check is not None:
        check(cfg, str(path))
    return cfg
