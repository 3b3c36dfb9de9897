"""Traffic-signal environment over libsumo: GESA phases every delta_s, stopped-vehicle rewards, tripinfo metrics."""

from __future__ import annotations

import itertools
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import sumolib

from ..sumo.sim import sumo_binary
from .maps import SignalMap, controlled_lights, signal_map
from .phases import (
    MOVEMENTS,
    PHASES,
    movement_lanes,
    phase_lanes,
    phase_mask,
    phase_movements,
    phase_state,
    tls_links,
    yellow_state,
)

#: Per-movement features, then the current phase one-hot: OBS_DIM = 8 * len(FEATURES) + 8.
FEATURES = ("exists", "green", "car_num", "stop_car_num", "occupancy")
OBS_DIM = len(MOVEMENTS) * len(FEATURES) + len(PHASES)
STOP_SPEED = 0.1  # m/s: SUMO's halting threshold (lane.getLastStepHaltingNumber)
_run_ids = itertools.count()


class SignalEnv:
    """One agent per traffic light of a RESCO map, choosing one of GESA's 8 phases every delta_s seconds.

    Observation (OBS_DIM = 48 floats per light): for each of the 8 movements NL, NT, WL, WT, SL, ST, EL, ET (GESA's
    order) the features exists, green (in the current phase), car_num, stop_car_num (speed < 0.1 m/s) and occupancy
    (0-1), counts averaged over the incoming lanes serving the movement as GESA does; then the current phase one-hot.
    Why: it is GESA's per-movement observation (eSpark paper, App. C.2; docs/espark.md, E-A6) restricted to what
    libsumo's lane API gives directly. GESA reads lane-area detectors and also has queue_length and flow; here whole
    incoming lanes are read, queue length is carried by stop_car_num, and flow is left out.

    step() applies each light's phase: if it changes, yellow_s of yellow (GESA's: every green signal of the
    old phase, right turns excepted) and then delta_s - yellow_s of the new phase, else delta_s of green.
    Reward per light = -(stopped vehicles on its incoming lanes) at the end of the step. The episode covers
    [map.begin_s, map.begin_s + horizon_s). pressures() gives MaxPressure's per-phase pressure.
    libsumo runs one simulation per process: close() (done at the horizon) before starting another.
    """

    def __init__(
        self,
        map: SignalMap | str,
        seed: int = 0,
        delta_s: float = 15,
        yellow_s: float = 5,
        horizon_s: float = 3600,
        backend: str = "libsumo",
        run_dir: Path | None = None,
        group_by: str = "lane",
        lights: str = "all",
    ):
        if not 0 <= yellow_s < delta_s:
            raise ValueError(f"need 0 <= yellow_s < delta_s, got {yellow_s}, {delta_s}")
        if backend not in ("libsumo", "traci"):
            raise ValueError(f"unknown backend {backend!r}: expected 'libsumo' or 'traci'")
        self.map = signal_map(map) if isinstance(map, str) else map
        self.seed, self.delta_s, self.yellow_s, self.horizon_s = (
            int(seed),
            float(delta_s),
            float(yellow_s),
            float(horizon_s),
        )
        self.backend = backend
        self.run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix=f"signals_{self.map.name}_"))
        net = sumolib.net.readNet(str(self.map.net))
        self.tls_ids = controlled_lights(net, lights)  # the others run their own SUMO programs
        self.links = {t: tls_links(net, t, group_by) for t in self.tls_ids}
        self.masks = {t: phase_mask(self.links[t]) for t in self.tls_ids}
        self.states = {t: [phase_state(self.links[t], p) for p in range(len(PHASES))] for t in self.tls_ids}
        self.incoming = {t: tuple(sorted({lk.in_lane for lk in self.links[t]})) for t in self.tls_ids}
        self.move_lanes = {t: movement_lanes(self.links[t]) for t in self.tls_ids}
        self.phase_lanes = {t: [phase_lanes(self.links[t], p) for p in range(len(PHASES))] for t in self.tls_ids}
        self._lanes = sorted(
            {lane for t in self.tls_ids for ins, outs in self.phase_lanes[t] for lane in ins | outs}
            | {lane for t in self.tls_ids for lane in self.incoming[t]}
        )
        self.lanes: dict[str, tuple[int, int, float]] = {}  # the last reading: (vehicles, halting, occupancy)
        # the vehicles due in the episode, for the paper's delay on maps where it counts those that never entered
        self.due = (
            planned_departures(self.map.routes, self.map.begin_s, self.map.begin_s + self.horizon_s)
            if self.map.count_undeparted
            else None
        )
        self._api: Any = None
        self.phase: dict[str, int] = {}
        self.time = self.map.begin_s
        self.tripinfo: Path | None = None
        self.metrics: dict[str, float] | None = None

    def action_masks(self) -> np.ndarray:
        """(n_lights, 8) bool in tls_ids order: the phases that exist at each light."""
        return np.stack([self.masks[t] for t in self.tls_ids])

    def args(self) -> list[str]:
        """SUMO options of the next episode (writes tripinfo, unfinished trips included, to self.tripinfo)."""
        return [
            "-n",
            str(self.map.net),
            "-r",
            ",".join(map(str, self.map.routes)),
            "--begin",
            repr(self.map.begin_s),
            "--end",
            repr(self.map.begin_s + self.horizon_s),
            "--seed",
            str(self.seed),
            "--no-step-log",
            "true",
            "--no-warnings",
            "true",
            "--tripinfo-output",
            str(self.tripinfo),
            "--tripinfo-output.write-unfinished",
            "true",
        ]

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start a fresh episode with every light showing its first existing phase; return observations."""
        self.close()
        if seed is not None:
            self.seed = int(seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tripinfo = self.run_dir / f"tripinfo_{os.getpid()}_{next(_run_ids)}.xml"
        self.metrics = None
        if self.backend == "libsumo":
            import libsumo

            if libsumo.simulation.isLoaded():
                raise RuntimeError("libsumo allows one simulation per process; close the other one first")
            libsumo.start(["sumo", *self.args()])
            self._api = libsumo
        else:
            import traci

            label = f"signals_{os.getpid()}_{next(_run_ids)}"
            traci.start([sumo_binary(), *self.args()], label=label)
            self._api = traci.getConnection(label)
        for t in self.tls_ids:
            n = len(self._api.trafficlight.getRedYellowGreenState(t))
            if n != len(self.states[t][0]):
                raise RuntimeError(f"light {t}: SUMO has {n} signals, the net file {len(self.states[t][0])}")
            self.phase[t] = int(np.flatnonzero(self.masks[t])[0])
            self._api.trafficlight.setRedYellowGreenState(t, self.states[t][self.phase[t]])
        self.time = self.map.begin_s
        return self._observe(self._read_lanes())

    def step(self, actions: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, float], bool, dict]:
        """Apply one phase per light for delta_s seconds; return (obs, rewards, done, info)."""
        if self._api is None:
            raise RuntimeError("call reset() first")
        if set(actions) != set(self.tls_ids):
            raise ValueError(
                f"actions must name every light exactly: missing {sorted(set(self.tls_ids) - set(actions))}, "
                f"unknown {sorted(set(actions) - set(self.tls_ids))}"
            )
        for t, a in actions.items():
            if not (isinstance(a, (int, np.integer)) and 0 <= a < len(PHASES) and self.masks[t][a]):
                raise ValueError(f"light {t}: action {a!r} is not an existing phase (mask {self.masks[t].astype(int)})")
        tl, end = self._api.trafficlight, min(self.time + self.delta_s, self.map.begin_s + self.horizon_s)
        changed = {t: int(a) for t, a in actions.items() if int(a) != self.phase[t]}
        if changed and self.yellow_s > 0:
            for t, a in changed.items():
                tl.setRedYellowGreenState(t, yellow_state(self.links[t], self.phase[t]))
            self._api.simulationStep(min(self.time + self.yellow_s, end))
        for t, a in changed.items():
            tl.setRedYellowGreenState(t, self.states[t][a])
            self.phase[t] = a
        self._api.simulationStep(end)
        self.time = end
        lanes = self._read_lanes()
        rewards = {t: -float(sum(lanes[lane][1] for lane in self.incoming[t])) for t in self.tls_ids}
        obs = self._observe(lanes)
        done = self.time >= self.map.begin_s + self.horizon_s - 1e-9
        info = {"time": self.time}
        if done:
            self.close()
            info["metrics"] = self.metrics
        return obs, rewards, done, info

    def _read_lanes(self) -> dict[str, tuple[int, int, float]]:
        """(vehicles, halting vehicles, occupancy 0-1) per incoming lane and per lane the lights lead to."""
        ln = self._api.lane
        self.lanes = {
            lane: (ln.getLastStepVehicleNumber(lane), ln.getLastStepHaltingNumber(lane), ln.getLastStepOccupancy(lane))
            for lane in self._lanes
        }
        return self.lanes

    def pressures(self, kind: str = "vehicles") -> dict[str, np.ndarray]:
        """(8,) per light: each phase's pressure; 0 for absent phases. "vehicles" (eSpark App. D.1.4): the
        vehicles on the incoming lanes of its two movements minus those on the lanes they lead to, each lane
        counted once. "halting" (GuideLight's MaxPressure, the GESA family's only released one): per movement,
        the halting vehicles on its incoming lanes minus, per link, those on the link's outgoing lane, clipped
        at 0; a phase adds its two movements."""
        if kind == "vehicles":
            return {
                t: np.array(
                    [
                        sum(self.lanes[x][0] for x in ins) - sum(self.lanes[x][0] for x in outs)
                        for ins, outs in self.phase_lanes[t]
                    ],
                    np.float32,
                )
                for t in self.tls_ids
            }
        if kind != "halting":
            raise ValueError(f"pressure kind must be 'vehicles' or 'halting', got {kind!r}")
        out = {}
        for t in self.tls_ids:
            move = {
                m: max(
                    sum(self.lanes[x][1] for x in lanes)
                    - sum(self.lanes[lk.out_lane][1] for lk in self.links[t] if lk.in_lane in lanes),
                    0,
                )
                for m, lanes in self.move_lanes[t].items()
            }
            out[t] = np.array([sum(move[m] for m in phase_movements(p)) for p in range(len(PHASES))], np.float32)
        return out

    def _observe(self, lanes: dict[str, tuple[int, int, float]]) -> dict[str, np.ndarray]:
        out = {}
        for t in self.tls_ids:
            green = set(PHASES[self.phase[t]].split("-"))
            o = np.zeros(OBS_DIM, dtype=np.float32)
            for k, m in enumerate(MOVEMENTS):
                ls = self.move_lanes[t][m]
                if ls:
                    vals = np.mean([lanes[lane] for lane in ls], axis=0)
                    o[k * len(FEATURES) : (k + 1) * len(FEATURES)] = (1.0, m in green, *vals)
            o[len(MOVEMENTS) * len(FEATURES) + self.phase[t]] = 1.0
            out[t] = o
        return out

    def close(self) -> None:
        """End the running simulation (if any); self.metrics = tripinfo_metrics() plus "pending", the vehicles
        due by now that SUMO could not yet insert (a full entry lane)."""
        if self._api is None:
            return
        api, self._api = self._api, None
        pending = len(api.simulation.getPendingVehicles())
        api.close()
        self.metrics = {
            **tripinfo_metrics(self.tripinfo, self.due, self.map.begin_s + self.horizon_s),
            "pending": pending,
        }

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def planned_departures(routes: tuple[Path, ...], begin_s: float, end_s: float) -> dict[str, float]:
    """id -> planned departure (s) of the route files' vehicles and trips due in [begin_s, end_s)."""
    due = {}
    for path in routes:
        for v in sumolib.xml.parse_fast(str(path), "vehicle", ["id", "depart"]):
            due[v.id] = float(v.depart)
        for v in sumolib.xml.parse_fast(str(path), "trip", ["id", "depart"]):
            due[v.id] = float(v.depart)
    return {k: d for k, d in due.items() if begin_s <= d < end_s}


def tripinfo_metrics(path: Path, undeparted: dict[str, float] | None = None, end_s: float = 0.0) -> dict[str, float]:
    """The paper's metrics (its cited metric code, RESCO's readXML as DuaLight uses it), in seconds:
    delay = mean of timeLoss + departDelay over every trip record, finished or still driving at the end;
    with `undeparted` (planned departures; the paper's code does this on Cologne8 and Ingolstadt21) each
    vehicle that never entered adds end_s - its planned departure and counts in the mean; trip_time and
    waiting_time = means of duration and waitingTime over every record. Secondary, the project's first
    figures: *_finished = the same means of timeLoss, duration, waitingTime over completed trips only.
    Also completed trips, total records and undeparted vehicles."""
    records = list(ET.parse(path).getroot().iter("tripinfo"))
    done = [t for t in records if float(t.get("arrival", "-1")) >= 0]
    seen = {t.get("id") for t in records}
    never = [d for v, d in (undeparted or {}).items() if v not in seen]

    def mean(rows, key: str) -> float:
        return float(np.mean([float(t.get(key)) for t in rows])) if rows else float("nan")

    delays = [float(t.get("timeLoss")) + float(t.get("departDelay", 0.0)) for t in records]
    delays += [end_s - d for d in never]
    return {
        "delay": float(np.mean(delays)) if delays else float("nan"),
        "trip_time": mean(records, "duration"),
        "waiting_time": mean(records, "waitingTime"),
        "delay_finished": mean(done, "timeLoss"),
        "trip_time_finished": mean(done, "duration"),
        "waiting_time_finished": mean(done, "waitingTime"),
        "completed": len(done),
        "total": len(records),
        "undeparted": len(never),
    }
