"""The msgpack codec: envelope frame, body frame, raw array frames; bounded and validated decoding."""
from __future__ import annotations

import gc
import itertools
import math
import time
from dataclasses import dataclass, field

import msgpack
import numpy as np
from pydantic import BaseModel, ValidationError

from .errors import ProtocolError
from .messages import PROTOCOL_VERSION, REGISTRY, ArraySpec, Body, Envelope, Message

ALLOWED_DTYPES = frozenset(
    {"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"}
)


@dataclass(frozen=True)
class Limits:
    """Bounds applied to every decode; oversize input is rejected before it is parsed."""

    max_message_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 8 * 1024
    max_body_bytes: int = 1024 * 1024
    max_array_bytes: int = 32 * 1024 * 1024
    max_arrays: int = 64
    # a frame's msgpack: at most max_container_len entries in any one list or map (refused from its
    # header, before it is built), at most max_items entries in all (counted as containers are built)
    max_container_len: int = 10_000
    max_items: int = 20_000


DEFAULT_LIMITS = Limits()


class _TooMany(Exception):
    """Raised from msgpack's hooks to stop building a frame with too many entries."""


def _unpack(buf: memoryview, limits: Limits, what: str) -> object:
    try:
        if buf.nbytes <= limits.max_items:  # every entry takes at least a byte: no need to count them
            return msgpack.unpackb(buf, raw=False, strict_map_key=True, max_array_len=limits.max_container_len,
                                   max_map_len=limits.max_container_len)
        return _unpack_counted(buf, limits)
    except _TooMany:
        raise ProtocolError(f"{what} frame holds more than {limits.max_items} entries") from None
    except Exception as exc:  # msgpack raises several types; all mean "malformed"
        raise ProtocolError(f"{what} frame is not valid msgpack ({type(exc).__name__}: {exc})") from None


def _unpack_counted(buf: memoryview, limits: Limits) -> object:
    """Unpack, counting the entries of each list and map as it is built; stop once there are too many
    (so a frame of a million tiny containers costs what max_items of them cost). The garbage collector
    waits meanwhile: a burst of up to max_items new containers would otherwise set off full collections,
    whose cost grows with the whole process's heap (46 ms a message measured with 300k objects live)."""
    count = 0

    def counted(container):
        nonlocal count
        count += len(container) + 1
        if count > limits.max_items:
            raise _TooMany
        return container

    collecting = gc.isenabled()
    gc.disable()
    try:
        return msgpack.unpackb(buf, raw=False, strict_map_key=True, max_array_len=limits.max_container_len,
                               max_map_len=limits.max_container_len, list_hook=counted, object_hook=counted)
    finally:
        if collecting:
            gc.enable()


def _map_len(buf: memoryview) -> int | None:
    """Entries of the msgpack map a frame starts with, read from its header alone; None if it starts
    with anything else."""
    if not buf.nbytes:
        return None
    head = buf[0]
    if 0x80 <= head <= 0x8F:
        return head & 0x0F
    if head == 0xDE and buf.nbytes >= 3:
        return int.from_bytes(buf[1:3], "big")
    if head == 0xDF and buf.nbytes >= 5:
        return int.from_bytes(buf[1:5], "big")
    return None


def _nested(obj: object) -> object:
    """msgpack fallback for values it does not know: nested pydantic models become maps."""
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, default=_nested)


MAX_DESCRIBED_ERRORS = 20  # building pydantic's error records costs per record: more are only counted


def _describe(err: ValidationError) -> str:
    """The first few errors of a validation, or only their number if there are many."""
    n = err.error_count()
    if n > MAX_DESCRIBED_ERRORS:
        return f"{n} validation errors"
    parts = []
    for e in err.errors(include_url=False, include_context=False, include_input=False)[:3]:
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{loc}: {e['msg']}")
    more = f" (and {n - 3} more)" if n > 3 else ""
    return "; ".join(parts) + more


def array_spec(name: str, arr: np.ndarray) -> ArraySpec:
    """Header entry for an array; refuses dtypes outside the allow-list."""
    dtype = arr.dtype.str
    if dtype not in ALLOWED_DTYPES:
        raise ProtocolError(f"array {name!r}: dtype {dtype} is not allowed")
    try:
        return ArraySpec(name=name, dtype=dtype, shape=list(arr.shape))
    except ValidationError as err:
        raise ProtocolError(f"array {name!r}: {_describe(err)}") from None


def encode(
    body: Body,
    *,
    src: str,
    dst: str,
    seq: int,
    t_sim: float = 0.0,
    arrays: dict[str, np.ndarray] | None = None,
) -> list[bytes]:
    """Encode a body into frames [envelope, body, *array buffers]."""
    arrays = arrays or {}
    specs, buffers = [], []
    for name, arr in arrays.items():
        arr = np.require(arr, requirements="C")  # keeps 0-d arrays 0-d
        specs.append(array_spec(name, arr).model_dump())
        buffers.append(memoryview(arr.reshape(-1)).cast("B") if arr.size else b"")
    env = {
        "v": PROTOCOL_VERSION, "type": body.TYPE, "src": src, "dst": dst, "seq": seq,
        "t_sim": float(t_sim), "t_wall": time.time(), "arrays": specs,
    }
    # a validated body's __dict__ holds exactly its fields; 1 us cheaper than model_dump() per message
    return [_pack(env), _pack(body.__dict__), *buffers]


_FIELDS: dict[type, int] = {}  # model -> number of fields (pydantic's model_fields costs 0.4 us a call)


def _decode_map(frame, max_bytes: int, model, what: str, limits: Limits):
    """One size-bounded msgpack map frame, validated into model. Every model forbids unknown keys, so a
    map with more keys than the model has fields is refused from its header, before it is unpacked."""
    buf = memoryview(frame)
    if buf.nbytes > max_bytes:
        raise ProtocolError(f"{what} frame of {buf.nbytes} bytes exceeds {max_bytes}")
    n, fields = _map_len(buf), _FIELDS.get(model)
    if fields is None:
        fields = _FIELDS[model] = len(model.model_fields)
    if n is not None and n > fields:
        raise ProtocolError(f"bad {what}: {n} keys for {fields} fields (extra keys are not permitted)")
    raw = _unpack(buf, limits, what)
    if not isinstance(raw, dict):
        raise ProtocolError(f"{what} must be a map, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ProtocolError(f"bad {what}: {_describe(err)}") from None


def decode_envelope(frame, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """Decode and validate only the envelope frame (what a router needs)."""
    env = _decode_map(frame, limits.max_header_bytes, Envelope, "envelope", limits)
    if env.v != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {env.v} is not supported (expected {PROTOCOL_VERSION})")
    return env


def _decode_array(spec: ArraySpec, frame, limits: Limits) -> np.ndarray:
    if spec.dtype not in ALLOWED_DTYPES:
        raise ProtocolError(f"array {spec.name!r}: dtype {spec.dtype} is not allowed")
    if any(d < 0 for d in spec.shape):
        raise ProtocolError(f"array {spec.name!r}: negative dimension in shape {spec.shape}")
    if any(d > limits.max_array_bytes for d in spec.shape):  # also catches 0-size shapes numpy cannot build
        raise ProtocolError(f"array {spec.name!r}: a dimension in shape {spec.shape} exceeds {limits.max_array_bytes}")
    dtype = np.dtype(spec.dtype)
    expected = math.prod(spec.shape) * dtype.itemsize
    if expected > limits.max_array_bytes:
        raise ProtocolError(f"array {spec.name!r} of {expected} bytes exceeds {limits.max_array_bytes}")
    buf = memoryview(frame).cast("B")
    if len(buf) != expected:
        raise ProtocolError(f"array {spec.name!r}: frame has {len(buf)} bytes, shape/dtype need {expected}")
    return np.frombuffer(buf, dtype=dtype).reshape(spec.shape)


def decode(frames, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode frames into a validated Message; raise ProtocolError saying what was wrong."""
    if len(frames) < 2:
        raise ProtocolError(f"expected at least 2 frames (envelope, body), got {len(frames)}")
    total = wire_size(frames)
    if total > limits.max_message_bytes:
        raise ProtocolError(f"message of {total} bytes exceeds {limits.max_message_bytes}")
    env = decode_envelope(frames[0], limits)
    model = REGISTRY.get(env.type)
    if model is None:
        raise ProtocolError(f"unknown message type {env.type!r}")
    if len(env.arrays) > limits.max_arrays:
        raise ProtocolError(f"{len(env.arrays)} arrays exceed the limit of {limits.max_arrays}")
    if len(frames) != 2 + len(env.arrays):
        raise ProtocolError(f"envelope announces {len(env.arrays)} arrays but {len(frames) - 2} array frames came")
    body = _decode_map(frames[1], limits.max_body_bytes, model, f"{env.type!r} body", limits)
    if len({s.name for s in env.arrays}) != len(env.arrays):
        raise ProtocolError("envelope announces two arrays with the same name")
    arrays = {s.name: _decode_array(s, f, limits) for s, f in zip(env.arrays, frames[2:])}
    return Message(env=env, body=body, arrays=arrays)


@dataclass
class Stamper:
    """Encodes outgoing messages of one sender with its id and a running sequence number."""

    src: str
    clock: callable = field(default=lambda: 0.0)
    _seq: itertools.count = field(default_factory=itertools.count)

    def encode(self, body: Body, dst: str, arrays: dict[str, np.ndarray] | None = None) -> list[bytes]:
        """Frames for body addressed to dst, stamped with the next sequence number and sim time."""
        return encode(body, src=self.src, dst=dst, seq=next(self._seq), t_sim=self.clock(), arrays=arrays)


def wire_size(frames) -> int:
    """Total bytes of a multipart message."""
    return sum(memoryview(f).nbytes for f in frames)
