"""Figure-eight SUMO world: net build, libsumo/traci stepping, determinism and acceleration control."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scenarios.sumo.figure8 import Figure8Files, build_figure8
from scenarios.sumo.sim import SumoSim, sumo_version

STEPS = 300  # 30 s at 0.1 s


@pytest.fixture(scope="module")
def fig8(tmp_path_factory: pytest.TempPathFactory) -> Figure8Files:
    return build_figure8(tmp_path_factory.mktemp("fig8"), n_vehicles=14, n_agents=9)


def run(files: Figure8Files, steps: int, backend: str = "libsumo") -> tuple[np.ndarray, np.ndarray]:
    """Positions (steps, n, 2) and speeds (steps, n) of all vehicles for each step."""
    with SumoSim(files.net, files.routes, step_length=files.step_length, seed=files.seed, backend=backend) as sim:
        xs, vs = [], []
        for _ in range(steps):
            sim.step()
            ids, xy, speed = sim.states()
            assert ids == list(files.vehicle_ids)
            xs.append(xy)
            vs.append(speed)
    return np.stack(xs), np.stack(vs)


@pytest.fixture(scope="module")
def libsumo_run(fig8: Figure8Files) -> tuple[np.ndarray, np.ndarray]:
    return run(fig8, STEPS)


def test_build_writes_files_and_caches(fig8: Figure8Files) -> None:
    out = fig8.net.parent
    for name in ("fig8.nod.xml", "fig8.edg.xml", "fig8.con.xml", "fig8.net.xml", "fig8.rou.xml"):
        assert (out / name).is_file()
    assert fig8.vehicle_ids == tuple(f"veh{i}" for i in range(14))
    assert fig8.agent_ids == fig8.vehicle_ids[:9]
    assert 415 < fig8.loop_length < 435  # 402.7 m of edges + two 11.2 m crossings
    routes = fig8.routes.read_text()
    assert routes.count('type="cav"') == 9 and routes.count('type="human"') == 5
    mtime = fig8.net.stat().st_mtime_ns
    assert build_figure8(out, n_vehicles=14, n_agents=9).net.stat().st_mtime_ns == mtime  # reused
    rebuilt = build_figure8(out, n_vehicles=10, n_agents=9)  # other parameters: rebuilt
    assert len(rebuilt.vehicle_ids) == 10
    build_figure8(out, n_vehicles=14, n_agents=9)  # leave the module's files as they were


def test_vehicles_present_moving_and_inside_the_eight(libsumo_run) -> None:
    xy, speed = libsumo_run
    assert xy.shape == (STEPS, 14, 2)
    assert speed[199].mean() > 1.0  # t = 20 s
    assert speed[200:].mean() > 1.0
    # bounding box of the eight: 120 m x 120 m after netconvert's offset, lanes 1.6 m off centre
    assert xy.min() > -5 and xy.max() < 125
    assert np.ptp(xy[..., 0]) > 100 and np.ptp(xy[..., 1]) > 100  # they really drive around


def test_same_seed_same_trajectories_after_restart(fig8: Figure8Files, libsumo_run) -> None:
    # libsumo allows one simulation at a time per process, but close() then start() again works
    xy, _ = run(fig8, STEPS)
    np.testing.assert_array_equal(xy, libsumo_run[0])


def test_one_libsumo_simulation_per_process(fig8: Figure8Files) -> None:
    with SumoSim(fig8.net, fig8.routes):
        with pytest.raises(RuntimeError, match="one simulation per process"):
            SumoSim(fig8.net, fig8.routes).start()
    sim = SumoSim(fig8.net, fig8.routes)
    sim.close()  # close before start, and twice, is harmless
    sim.close()


def test_apply_acceleration_slows_vehicle(fig8: Figure8Files) -> None:
    with SumoSim(fig8.net, fig8.routes) as sim:
        for _ in range(150):
            sim.step()
        ids, _, speed = sim.states()
        k = int(np.argmax(speed))
        vid, v0 = ids[k], speed[k]
        assert v0 > 1.0
        for i in range(1, 4):
            sim.apply_acceleration(vid, -3.0)
            sim.step()
            # beyond the vType's decel of 1.5 m/s^2: the command is applied exactly
            assert sim.states([vid])[2][0] == pytest.approx(v0 - 0.3 * i, abs=1e-6)
        sim.release_control(vid)
        sim.step()
        assert sim.collisions() == []


def test_traci_matches_libsumo(fig8: Figure8Files, libsumo_run) -> None:
    xy, speed = run(fig8, 50, backend="traci")
    # same SUMO build, same inputs, and TraCI sends doubles: the runs are bit-identical
    np.testing.assert_array_equal(xy, libsumo_run[0][:50])
    np.testing.assert_array_equal(speed, libsumo_run[1][:50])


def test_sumo_version_is_recorded() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", sumo_version())
