"""The envelope and one msgspec Struct per message type (control plane and radio plane).

Structs, not pydantic models: msgspec decodes msgpack straight into them, checking every type and bound
below as it goes and stopping at the first error, at a small fraction of pydantic's cost per message
(configuration stays pydantic). Building a Struct in Python does not validate it; its receiver does."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
import numpy as np
from msgspec import Meta

PROTOCOL_VERSION = 1
BROADCAST = "*"

# a float that is neither NaN nor infinite (both fail these bounds)
Finite = Annotated[float, Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]
NonNegative = Annotated[int, Meta(ge=0)]

MAX_NAME, MAX_DIMS, MAX_ID = 64, 8, 128  # names (types, roles, arrays), an array's dimensions, node ids
Name = Annotated[str, Meta(max_length=MAX_NAME)]
NodeId = Annotated[str, Meta(max_length=MAX_ID)]


class ArraySpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Header entry of one array travelling as a raw buffer frame."""

    name: Name
    dtype: Annotated[str, Meta(max_length=8)]
    shape: Annotated[list[int], Meta(max_length=MAX_DIMS)]


class Envelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Routing header of every message; the medium reads only this frame."""

    v: int = PROTOCOL_VERSION
    type: Name
    src: NodeId
    dst: NodeId
    seq: NonNegative
    t_sim: Finite = 0.0
    t_wall: Finite = 0.0
    arrays: Annotated[list[ArraySpec], Meta(max_length=64)] = []


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every message body; subclasses set TYPE and register themselves.

    Every body forbids unknown keys (the codec refuses a map with more keys than fields before it is
    unpacked), floats are finite, and decoding stops at the first bad entry: a hostile body costs one
    error, not one per entry."""

    TYPE: ClassVar[str] = ""


REGISTRY: dict[str, type[Body]] = {}


def register(cls: type[Body]) -> type[Body]:
    """Class decorator adding a body type to the type registry."""
    if not cls.TYPE or cls.TYPE in REGISTRY:
        raise ValueError(f"bad or duplicate message type {cls.TYPE!r}")
    REGISTRY[cls.TYPE] = cls
    return cls


class Message:
    """A decoded message: envelope, typed body and its arrays (a plain class: built once per message)."""

    __slots__ = ("env", "body", "arrays")

    def __init__(self, env: Envelope, body: Body, arrays: dict[str, np.ndarray] | None = None):
        self.env, self.body, self.arrays = env, body, arrays or {}

    def __repr__(self) -> str:
        return f"Message(env={self.env!r}, body={self.body!r}, arrays={list(self.arrays)})"


# ---------------------------------------------------------------- control plane
@register
class Register(Body):
    """A process announces itself and its inbox endpoint to the coordinator."""

    TYPE: ClassVar[str] = "register"
    node_id: Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
    endpoint: Annotated[str, Meta(pattern=r"^(tcp|ipc)://[^\s]{1,200}$")]
    kind: Literal["agent", "world", "medium"] = "agent"
    role: Name = ""
    pid: int = 0
    host: Annotated[str, Meta(max_length=255)] = ""


@register
class RegisterAck(Body):
    """The coordinator accepts a registration and hands the node its settings."""

    TYPE: ClassVar[str] = "register_ack"
    run_id: str
    seed: int
    settings: dict[str, Any] = {}


@register
class Directory(Body):
    """Endpoints of every registered process, keyed by node id, plus their kinds (and, with CURVE,
    the public key each was authenticated with: the keys its peers admit)."""

    TYPE: ClassVar[str] = "directory"
    endpoints: dict[str, str]
    kinds: dict[str, str] = {}
    down: list[str] = []
    keys: dict[str, str] = {}


@register
class Start(Body):
    """Everyone is registered: begin the run."""

    TYPE: ClassVar[str] = "start"


@register
class Shutdown(Body):
    """Flush what you hold and exit."""

    TYPE: ClassVar[str] = "shutdown"
    reason: str = ""


@register
class Heartbeat(Body):
    """Liveness ping from a node to the coordinator."""

    TYPE: ClassVar[str] = "heartbeat"
    status: str = "ok"


@register
class Metrics(Body):
    """One metrics record for the run's metrics.jsonl."""

    TYPE: ClassVar[str] = "metrics"
    kind: Name
    values: dict[str, Any]  # what a record may hold: coordinator/run_folder.py
    final: bool = False


@register
class BarrierArrive(Body):
    """A node reached the named barrier for the given round."""

    TYPE: ClassVar[str] = "barrier_arrive"
    name: str
    round: int = 0
    group: list[str] = []  # who must arrive; empty: every live agent


@register
class BarrierRelease(Body):
    """All members reached the barrier; proceed."""

    TYPE: ClassVar[str] = "barrier_release"
    name: str
    round: int = 0
    members: list[str] = []


# ---------------------------------------------------------------------------------------------- step phases
# What a world tells an agent with an observation besides the observation itself: which phase the step is in (the
# "phase" key on the wire) and that phase's fields. Agents dispatch on the type; unknown keys are refused.
MAX_INSTRUCTIONS, MAX_INSTRUCTION = 256, 512  # RELED plan followers: instructions per plan, characters each
# subset: RELED's subset rollout; test_stochastic: routing's sampled test episodes (greedy ones are "test")
Mode = Literal["train", "test", "eval", "subset", "test_stochastic"]


class Phase(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, tag_field="phase"):
    """Base of the step phases."""


class Act(Phase, tag="act"):
    """Act on this observation (or, with Observation.done, the episode ended for this agent)."""

    mode: Mode = "train"  # train: sample and learn; test / eval: greedy; others: sampled; only train is kept
    t: Finite | None = None  # the world's clock at this step, s (routing, CAV)
    applied: int | None = None  # the action the world applied instead of the agent's last answer (late or invalid)
    arrived: bool = False  # routing, at the end: the vehicle reached its destination
    truncated: bool = False  # routing, at the end: cut at the episode's time limit
    episode: NonNegative | None = None  # CAV: the episode this step belongs to
    first: bool = False  # CAV: the episode's first step
    final: bool = False  # CAV: the run's last episode ends with this step
    # CAV: with done, a terminal state (a collision; the default: a world that does not say ends the bootstrap);
    # False: a truncation (the horizon, leaving the road) the learner bootstraps from
    terminal: bool = True
    left: bool = False  # CAV: the vehicle left the road (a truncation)


class Follow(Act, tag="follow"):
    """RELED subset rollout: a plan follower is told the road its expert plan takes; it answers with it."""

    expert_action: int = -1  # -1: the plan has no road here


class Rollout(Phase, tag="rollout"):
    """RELED: the agent's part in the coming subset rollout."""

    subset: bool = False  # in the subset (follows a plan) or not
    instructions: (
        Annotated[list[Annotated[str, Meta(max_length=MAX_INSTRUCTION)]], Meta(max_length=MAX_INSTRUCTIONS)] | None
    ) = None


class Expert(Phase, tag="expert"):
    """RELED: the expert trajectory of this agent's plan (arrays obs, mask, actions, rewards, xy), kept for training."""

    epoch: NonNegative
    arrived: bool = True


class Probe(Phase, tag="probe"):
    """RELED: a plan that did not reach the destination: the agent answers pi(.|o) on its steps, keeps nothing."""

    epoch: NonNegative
    arrived: bool = False


class Update(Phase, tag="update"):
    """Every agent's learning step on what it gathered since the last one (epoch k of K)."""

    epoch: NonNegative
    K: NonNegative | None = None


StepPhase = Act | Follow | Rollout | Expert | Probe | Update


@register
class Observation(Body):
    """World to agent: the agent's observation, reward and status for one step, and the step's phase."""

    TYPE: ClassVar[str] = "observation"
    step: int
    reward: Finite = 0.0
    done: bool = False
    info: StepPhase = msgspec.field(default_factory=Act)
    radio_expected: int | None = None  # radio messages the medium has delivered to this agent so far


@register
class Action(Body):
    """Agent to world: the action for a step (arrays carry vector actions)."""

    TYPE: ClassVar[str] = "action"
    step: int
    value: Finite | int | None = None
    radio_sent: int = 0  # radio messages this agent has sent to the medium so far (protocols/lockstep.py: `handed`)


@register
class Positions(Body):
    """World broadcast of every vehicle's position; arrays 'xy' (n,2) and 'speed' (n,)."""

    TYPE: ClassVar[str] = "positions"
    step: int
    ids: list[str]
    radio_sent: dict[str, int] = {}  # per agent, from its last action


@register
class Tick(Body):
    """Medium to world: every radio message sent before this step's positions is routed, and
    everything due by now is delivered; 'delivered' counts deliveries per agent so far."""

    TYPE: ClassVar[str] = "tick"
    step: int
    delivered: dict[str, int] = {}


@register
class LinkReport(Body):
    """The medium's per-link counters: arrays 'keys' (n,3) int32 indices into names for (src, dst,
    type), 'distance' (n,) and 'counts' (n, len(columns)); compact at any scale. With them, the newest
    positions it routes by (ids, step, t_sim and array 'xy' (len(ids), 2)) for the run's live view."""

    TYPE: ClassVar[str] = "link_report"
    names: list[str]
    columns: list[str]
    final: bool = False
    ids: list[str] = []
    step: int = -1
    t_sim: float = 0.0
    positions_only: bool = False  # no counters: the positions between two full reports


@register
class Ping(Body):
    """Request that expects a Pong; used for liveness and round-trip measurements."""

    TYPE: ClassVar[str] = "ping"
    nonce: int = 0


@register
class Pong(Body):
    """Answer to a Ping."""

    TYPE: ClassVar[str] = "pong"
    nonce: int = 0


@register
class Error(Body):
    """Reply to a request that could not be handled (malformed, oversized, unknown)."""

    TYPE: ClassVar[str] = "error"
    code: str
    detail: str = ""


# ---------------------------------------------------------------- radio plane
@register
class Beacon(Body):
    """Periodic V2X status broadcast (position, speed); 'pad' brings it to its nominal size."""

    TYPE: ClassVar[str] = "beacon"
    x: Finite
    y: Finite
    speed: Finite
    pad: bytes = b""


@register
class Payload(Body):
    """A bulk unicast; the data travels as the array 'data'."""

    TYPE: ClassVar[str] = "payload"
    tag: str = ""


# ---------------------------------------------------------------- radio plane: dispatcher and robots
class _DispatcherNotice(Body):
    """What every dispatcher message carries: the step, and s_g for the last len(sg) steps ending with
    this step's, so a robot that missed broadcasts can still take the steps it missed."""

    episode: NonNegative
    step: NonNegative
    sg: Annotated[list[int], Meta(min_length=1, max_length=64)]


@register
class StepBegin(_DispatcherNotice):
    """Dispatcher broadcast at the start of a step: every robot takes the step."""

    TYPE: ClassVar[str] = "step_begin"


@register
class Poll(_DispatcherNotice):
    """Dispatcher to one robot: report your zone at the start of this step."""

    TYPE: ClassVar[str] = "poll"


@register
class PollReply(Body):
    """Robot to dispatcher: its zone at the start of the polled step."""

    TYPE: ClassVar[str] = "poll_reply"
    episode: NonNegative
    step: NonNegative
    zone: NonNegative


# ---------------------------------------------------------------- radio plane: RSM-MASAC segments
@register
class SegmentRequest(Body):
    """Pull request (i, P_i, j_p, p) of RSM: send segment `index` of your actor cut into `segments` parts.
    `full = True` asks for the whole actor (the Avg baseline's full-model exchange, P_i = 1)."""

    TYPE: ClassVar[str] = "segment_request"
    round: NonNegative
    replica: NonNegative
    segments: Annotated[int, Meta(ge=1, le=64)]
    index: Annotated[int, Meta(ge=0, le=63)]


@register
class SegmentResponse(Body):
    """One CPM-sized chunk of a requested segment; the values travel as the float32 array 'values'.
    `offset` is the chunk's start within the segment, `length` the segment's full length."""

    TYPE: ClassVar[str] = "segment_response"
    round: NonNegative
    replica: NonNegative
    segments: Annotated[int, Meta(ge=1, le=64)]
    index: Annotated[int, Meta(ge=0, le=63)]
    chunk: NonNegative
    chunks: Annotated[int, Meta(ge=1)]
    offset: NonNegative
    length: Annotated[int, Meta(ge=1)]
