"""The msgpack codec: envelope frame, body frame, raw array frames; bounded and validated decoding (msgspec)."""

from __future__ import annotations

import gc
import itertools
import math
import time
from dataclasses import dataclass, field

import msgpack
import msgspec
import numpy as np
from pydantic import BaseModel

from .errors import ProtocolError
from .messages import MAX_DIMS, MAX_NAME, PROTOCOL_VERSION, REGISTRY, ArraySpec, Body, Envelope, Message

ALLOWED_DTYPES = frozenset({"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"})


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
            return msgpack.unpackb(
                buf,
                raw=False,
                strict_map_key=True,
                max_array_len=limits.max_container_len,
                max_map_len=limits.max_container_len,
                ext_hook=_no_ext,
            )
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
        return msgpack.unpackb(
            buf,
            raw=False,
            strict_map_key=True,
            max_array_len=limits.max_container_len,
            max_map_len=limits.max_container_len,
            list_hook=counted,
            object_hook=counted,
            ext_hook=_no_ext,
        )
    finally:
        if collecting:
            gc.enable()


def _map_len(buf: bytes | memoryview) -> int | None:
    """Entries of the msgpack map a frame starts with, read from its header alone; None if it starts
    with anything else."""
    if not len(buf):
        return None
    head = buf[0]
    if 0x80 <= head <= 0x8F:
        return head & 0x0F
    if head == 0xDE and len(buf) >= 3:
        return int.from_bytes(buf[1:3], "big")
    if head == 0xDF and len(buf) >= 5:
        return int.from_bytes(buf[1:5], "big")
    return None


def _no_ext(code: int, _data) -> None:
    """ext_hook of both decoders: msgpack extension types never enter (no object of an unknown kind)."""
    raise ProtocolError(f"msgpack extension type {code} is not accepted")


def _plain(obj: object) -> object:
    """enc_hook for values msgspec does not know: numpy scalars become Python numbers, pydantic models
    (settings handed to nodes) maps."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    raise TypeError(f"cannot encode {type(obj).__name__}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_plain)
_DECODERS: dict[type, tuple[msgspec.msgpack.Decoder, int]] = {}  # Struct -> (its decoder, its fields)


def _decoder(model: type) -> tuple[msgspec.msgpack.Decoder, int]:
    entry = _DECODERS.get(model)
    if entry is None:
        entry = _DECODERS[model] = msgspec.msgpack.Decoder(model, ext_hook=_no_ext), len(model.__struct_fields__)
    return entry


def _describe(err: msgspec.ValidationError) -> str:
    """msgspec's 'Expected `str`, got `int` - at `$.ids[0]`' as 'ids.0: Expected `str`, got `int`' (a map's
    key is not named: 'endpoints.<key>: ...')."""
    text, _, at = str(err).partition(" - at `$")
    loc = at.rstrip("`").lstrip(".").replace("[...]", ".<key>").replace("[", ".").replace("]", "") or "(root)"
    return f"{loc}: {text}"[:300]


def array_spec(name: str, arr: np.ndarray) -> ArraySpec:
    """Header entry for an array; refuses dtypes outside the allow-list, long names and many dimensions."""
    dtype = arr.dtype.str
    if dtype not in ALLOWED_DTYPES:
        raise ProtocolError(f"array {name!r}: dtype {dtype} is not allowed")
    if not isinstance(name, str) or len(name) > MAX_NAME or arr.ndim > MAX_DIMS:
        raise ProtocolError(
            f"array {name!r}: a name of at most {MAX_NAME} characters and at most {MAX_DIMS} dimensions, got {arr.ndim}"
        )
    return ArraySpec(name=name, dtype=dtype, shape=list(arr.shape))


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
    specs, buffers = [], []
    if arrays:
        for name, arr in arrays.items():
            arr = np.require(arr, requirements="C")  # keeps 0-d arrays 0-d
            specs.append(array_spec(name, arr))
            buffers.append(memoryview(arr.reshape(-1)).cast("B") if arr.size else b"")
    env = Envelope(type=body.TYPE, src=src, dst=dst, seq=seq, t_sim=float(t_sim), t_wall=time.time(), arrays=specs)
    return [_ENCODER.encode(env), _ENCODER.encode(body), *buffers]


def _what(body_of: str | None) -> str:
    return "envelope" if body_of is None else f"{body_of!r} body"


def _decode_map(frame, max_bytes: int, model: type, body_of: str | None, limits: Limits):
    """One size-bounded msgpack map frame, decoded and validated into the Struct model. Every Struct forbids
    unknown keys, so a map with more keys than the model has fields is refused from its header. A frame
    too short to hold a container past the limits is decoded by msgspec in one pass; a longer one is first
    unpacked under the container and entry bounds, then converted. body_of: the message type of a body
    frame, None for the envelope (named in errors only: formatting it costs per message)."""
    buf = frame if type(frame) is bytes else memoryview(frame).cast("B")
    size = len(buf)
    if size > max_bytes:
        raise ProtocolError(f"{_what(body_of)} frame of {size} bytes exceeds {max_bytes}")
    n = _map_len(buf)
    if n is None:  # say what it is instead (or that it is not msgpack at all)
        raise ProtocolError(
            f"{_what(body_of)} must be a map, got {type(_unpack(memoryview(buf), limits, _what(body_of))).__name__}"
        )
    decoder, fields = _decoder(model)
    if n > fields:
        raise ProtocolError(f"bad {_what(body_of)}: {n} keys for {fields} fields (extra keys are not permitted)")
    try:
        if size <= limits.max_container_len:  # every entry takes a byte: no container can be too long
            return decoder.decode(buf)
        return msgspec.convert(_unpack(memoryview(buf), limits, _what(body_of)), model)
    except msgspec.ValidationError as err:
        if " - at `key` in " in str(err):  # as msgpack's strict_map_key on the long path says it
            raise ProtocolError(f"{_what(body_of)} frame is not valid msgpack here (map keys are strings)") from None
        raise ProtocolError(f"bad {_what(body_of)}: {_describe(err)}") from None
    except msgspec.DecodeError as err:
        raise ProtocolError(f"{_what(body_of)} frame is not valid msgpack ({err})") from None


def decode_envelope(frame, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """Decode and validate only the envelope frame (what a router needs)."""
    env = _decode_map(frame, limits.max_header_bytes, Envelope, None, limits)
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
    specs = env.arrays
    if len(specs) > limits.max_arrays:
        raise ProtocolError(f"{len(specs)} arrays exceed the limit of {limits.max_arrays}")
    if len(frames) != 2 + len(specs):
        raise ProtocolError(f"envelope announces {len(specs)} arrays but {len(frames) - 2} array frames came")
    body = _decode_map(frames[1], limits.max_body_bytes, model, env.type, limits)
    if not specs:
        return Message(env, body)
    if len({s.name for s in specs}) != len(specs):
        raise ProtocolError("envelope announces two arrays with the same name")
    return Message(env, body, {s.name: _decode_array(s, f, limits) for s, f in zip(specs, frames[2:])})


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
    total = 0
    for f in frames:
        total += len(f) if type(f) is bytes else memoryview(f).nbytes
    return total
