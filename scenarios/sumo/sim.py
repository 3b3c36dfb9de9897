"""Thin SUMO wrapper for the world process: libsumo in-process (default) or TraCI over a socket."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import sumo  # noqa: F401  (sets SUMO_HOME for libsumo, traci and sumolib)

#: SUMO's default speed mode: obey safe speed, max accel/decel, right of way, red lights.
DEFAULT_SPEED_MODE = 31
#: Flow's "obey_safe_speed" (bit 0 only): commanded speeds ignore the vType's accel/decel limits
#: and the right of way, but never drive into the leader. RSM-MASAC's figure-eight uses it.
OBEY_SAFE_SPEED = 1

_libsumo_owner: SumoSim | None = None  # libsumo runs one simulation per process


def sumo_version() -> str:
    """Version of the SUMO engine (e.g. "1.28.0"), for recording in run folders."""
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("eclipse-sumo")
    import libsumo

    return libsumo.getVersion()[1].split()[-1]


def sumo_binary(gui: bool = False) -> str:
    """Path of the sumo (or sumo-gui) binary of the pinned eclipse-sumo wheel."""
    exe = os.path.join(sumo.SUMO_HOME, "bin", "sumo-gui" if gui else "sumo")
    if os.path.exists(exe):
        return exe
    import sumolib

    return sumolib.checkBinary("sumo-gui" if gui else "sumo")


class SumoSim:
    """One SUMO simulation driven through libsumo (default) or traci.

    libsumo runs SUMO inside this process and is 5-70x faster per step than TraCI, but it allows only
    **one simulation per process** at a time (close() and start() again is fine) and is not thread
    safe; run parallel simulations in separate processes. The traci backend starts a sumo (or
    sumo-gui) child process and talks to it over a private socket connection, so several can coexist.

    Positions, speeds, departures, arrivals and collisions come from subscriptions, which TraCI
    returns together with each simulationStep: reading all vehicles costs no extra round trip.
    Vehicles are listed in departure order (on the figure-eight: veh0, veh1, ...).
    """

    def __init__(
        self,
        net_file: str | Path,
        route_file: str | Path,
        step_length: float = 0.1,
        seed: int = 0,
        backend: str = "libsumo",
        gui: bool = False,
        extra_args: Sequence[str] = (),
        collision_action: str = "warn",
        control_speed_mode: int = OBEY_SAFE_SPEED,
        quiet: bool = True,
    ) -> None:
        if backend not in ("libsumo", "traci"):
            raise ValueError(f"backend must be 'libsumo' or 'traci', not {backend!r}")
        if gui and backend == "libsumo":
            raise ValueError("libsumo has no GUI; use backend='traci' with gui=True")
        self.net_file, self.route_file = Path(net_file), Path(route_file)
        self.step_length, self.seed, self.backend, self.gui = step_length, seed, backend, gui
        self.extra_args = list(extra_args)
        self.collision_action, self.quiet = collision_action, quiet
        self.control_speed_mode = control_speed_mode
        self._api: Any = None  # the libsumo module or a traci.connection.Connection
        self._tc: Any = None  # traci.constants
        self._order: dict[str, None] = {}  # vehicles in the net, in departure order
        self._veh: dict[str, dict[int, Any]] = {}
        self._sim: dict[int, Any] = {}
        self._controlled: set[str] = set()

    def args(self) -> list[str]:
        """SUMO command-line options (without the binary) this simulation is started with."""
        args = [
            "-n",
            str(self.net_file),
            "-r",
            str(self.route_file),
            "--step-length",
            repr(float(self.step_length)),
            "--seed",
            str(int(self.seed)),
            "--no-step-log",
            "true",
            "--collision.action",
            self.collision_action,
            # crossing crashes inside the figure-eight's junction count too
            "--collision.check-junctions",
            "true",
            # a fixed set of agent vehicles must never be teleported away by jam detection
            "--time-to-teleport",
            "-1",
        ]
        if self.quiet:
            args += ["--no-warnings", "true"]
        if self.gui:
            args += ["--start", "true", "--quit-on-end", "true"]
        return args + self.extra_args

    def start(self) -> None:
        """Start SUMO and subscribe to the per-step data the world needs."""
        global _libsumo_owner
        if self._api is not None:
            raise RuntimeError("simulation already started")
        if self.backend == "libsumo":
            if _libsumo_owner is not None:
                raise RuntimeError(
                    "libsumo allows one simulation per process; close the other first or use a separate process"
                )
            import libsumo

            libsumo.start(["sumo", *self.args()])
            _libsumo_owner, self._api = self, libsumo
        else:
            self._api = self._start_traci()
        import traci.constants as tc

        self._tc = tc
        self._api.simulation.subscribe(
            [tc.VAR_TIME, tc.VAR_DEPARTED_VEHICLES_IDS, tc.VAR_ARRIVED_VEHICLES_IDS, tc.VAR_COLLIDING_VEHICLES_IDS]
        )
        self._sim = dict(self._api.simulation.getSubscriptionResults() or {})
        self._order.clear()
        self._veh, self._controlled = {}, set()

    def _start_traci(self) -> Any:
        """Launch sumo with a free port and connect to it without traci's global connection pool."""
        import sumolib
        import traci

        last: Exception | None = None
        for _ in range(5):  # the free port can be taken before sumo binds it: retry on a new one
            port = sumolib.miscutils.getFreeSocketPort()
            proc = subprocess.Popen(
                [sumo_binary(self.gui), *self.args(), "--remote-port", str(port)], stdout=subprocess.DEVNULL
            )
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # traci prints its retries
                    return traci.connect(port, numRetries=200, proc=proc, waitBetweenRetries=0.025)
            except traci.exceptions.TraCIException as e:
                last = e
                proc.kill()
                proc.wait()
        raise RuntimeError(f"could not start sumo for TraCI: {last}")

    def step(self) -> float:
        """Advance one step; return the simulation time in seconds."""
        api, tc = self._api, self._tc
        api.simulationStep()
        self._sim = api.simulation.getSubscriptionResults()
        for vid in self._sim[tc.VAR_ARRIVED_VEHICLES_IDS]:
            self._order.pop(vid, None)
            self._controlled.discard(vid)
        for vid in self._sim[tc.VAR_DEPARTED_VEHICLES_IDS]:
            api.vehicle.subscribe(vid, [tc.VAR_POSITION, tc.VAR_SPEED, tc.VAR_DISTANCE])
            self._order[vid] = None
        self._veh = api.vehicle.getAllSubscriptionResults()
        return self.time

    @property
    def time(self) -> float:
        """Current simulation time in seconds (0 before the first step)."""
        return float(self._sim.get(self._tc.VAR_TIME, 0.0)) if self._tc else 0.0

    def vehicle_ids(self) -> list[str]:
        """Ids of the vehicles in the network, in departure order."""
        return list(self._order)

    def states(self, ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(ids, xy (n, 2) float64 in metres, speed (n,) float64 in m/s) for ids or all vehicles."""
        ids = list(self._order) if ids is None else list(ids)
        pos, spd = self._tc.VAR_POSITION, self._tc.VAR_SPEED
        try:
            rows = [self._veh[v] for v in ids]
        except KeyError as e:
            raise KeyError(f"vehicle {e.args[0]!r} is not in the network") from None
        xy = np.array([r[pos] for r in rows], dtype=np.float64).reshape(len(rows), 2)
        speed = np.array([r[spd] for r in rows], dtype=np.float64)
        return ids, xy, speed

    def distances(self, ids: Iterable[str]) -> np.ndarray:
        """Distance (m) each vehicle has driven since it departed (its odometer)."""
        var = self._tc.VAR_DISTANCE
        return np.array([self._veh[v][var] for v in ids], dtype=np.float64)

    def apply_acceleration(self, veh_id: str, accel: float) -> None:
        """Command veh_id to accelerate by accel (m/s^2) over the next step, as Flow does.

        The target speed max(0, v + accel * dt) is set with slowDown(id, target, 1e-3), which holds
        for the next step only: a vehicle that gets no command falls back to SUMO's car following.
        On the first command the vehicle gets control_speed_mode (default OBEY_SAFE_SPEED), so SUMO
        applies accelerations beyond the vType's accel/decel but still caps the speed at the safe
        speed behind the leader (no rear-end crash).
        """
        api = self._api
        if veh_id not in self._controlled:
            api.vehicle.setSpeedMode(veh_id, self.control_speed_mode)
            self._controlled.add(veh_id)
        v = self._veh[veh_id][self._tc.VAR_SPEED]
        api.vehicle.slowDown(veh_id, max(0.0, v + float(accel) * self.step_length), 1e-3)

    def release_control(self, veh_id: str) -> None:
        """Hand veh_id back to SUMO's car-following model (default speed mode, no speed override)."""
        if veh_id in self._controlled:
            self._api.vehicle.setSpeed(veh_id, -1)
            self._api.vehicle.setSpeedMode(veh_id, DEFAULT_SPEED_MODE)
            self._controlled.discard(veh_id)

    def collisions(self) -> list[str]:
        """Ids of the vehicles involved in a collision during the last step."""
        return list(self._sim.get(self._tc.VAR_COLLIDING_VEHICLES_IDS, ())) if self._tc else []

    def close(self) -> None:
        """Stop SUMO; calling it again, or before start(), does nothing."""
        global _libsumo_owner
        api, self._api = self._api, None
        if api is None:
            return
        if self.backend == "libsumo":
            _libsumo_owner = None
        with contextlib.suppress(Exception):  # the server may already be gone
            api.close()

    def __enter__(self) -> SumoSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
