"""eSpark traffic-signal environment: GESA phase masks on a hand-built T junction and a short Grid 4x4 episode."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sumolib

from scenarios.signals.env import OBS_DIM, SignalEnv, tripinfo_metrics
from scenarios.signals.maps import SignalMap
from scenarios.signals.phases import PHASES, assign_arms, phase_mask, phase_state, tls_links, yellow_state
from scenarios.sumo.figure8 import _netconvert


@pytest.fixture(scope="module")
def tee(tmp_path_factory) -> SignalMap:
    """A signalised T junction C with west, east and south arms (no north arm), 200 m each, plus 2 min of flows."""
    d = tmp_path_factory.mktemp("tee")
    nodes = {"C": (0, 0), "W": (-200, 0), "E": (200, 0), "S": (0, -200)}
    (d / "t.nod.xml").write_text(
        "<nodes>\n"
        + "".join(
            f'  <node id="{n}" x="{x}" y="{y}" type="{"traffic_light" if n == "C" else "priority"}"/>\n'
            for n, (x, y) in nodes.items()
        )
        + "</nodes>\n"
    )
    (d / "t.edg.xml").write_text(
        "<edges>\n"
        + "".join(
            f'  <edge id="{a}{b}" from="{a}" to="{b}" numLanes="1" speed="13.9"/>\n'
            for arm in "WES"
            for a, b in ((arm, "C"), ("C", arm))
        )
        + "</edges>\n"
    )
    net = d / "t.net.xml"
    subprocess.run(
        [
            _netconvert(),
            "-n",
            str(d / "t.nod.xml"),
            "-e",
            str(d / "t.edg.xml"),
            "--no-turnarounds",
            "true",
            "--no-warnings",
            "true",
            "-o",
            str(net),
        ],
        check=True,
        capture_output=True,
    )
    routes = d / "t.rou.xml"
    routes.write_text(
        "<routes>\n"
        + "".join(
            f'  <flow id="{o}{t}" begin="0" end="120" period="10" from="{o}C" to="C{t}"/>\n'
            for o, t in ("WE", "EW", "WS", "ES", "SW", "SE")
        )
        + "</routes>\n"
    )
    return SignalMap("tee", "T junction", net, (routes,), 0.0, 120.0)


def test_tee_movements_and_mask_by_lane_and_by_link(tee):
    net = sumolib.net.readNet(str(tee.net))
    # one lane per arm: the east lane carries through and left, so GESA groups its left link with ET (no EL)
    links = tls_links(net, "C")
    assert {lk.group for lk in links} - {None} == {"WT", "ET", "SL"}
    assert dict(zip(PHASES, phase_mask(links).tolist())) == {
        "WT-ET": True,
        "EL-ET": True,
        "WL-WT": True,
        "EL-WL": False,
        "NT-ST": False,
        "SL-ST": True,
        "NT-NL": False,
        "NL-SL": True,
    }
    a = phase_state(links, PHASES.index("WT-ET"))
    for lk in links:  # the east lane's left link is green with its through link: no left-turner blocks it
        assert a[lk.index] == ("G" if lk.arm in "WE" and lk.turn != "R" else "g" if lk.turn == "R" else "r")
    # GESA's yellow: every green signal of the phase turns yellow, right turns stay green
    assert yellow_state(links, PHASES.index("WT-ET")) == a.replace("G", "y")
    # the per-link grouping of the first version: the shared lane's left link is its own movement EL
    by_link = tls_links(net, "C", group_by="link")
    assert {lk.group for lk in by_link} - {None} == {"WT", "ET", "EL", "SL"}
    assert dict(zip(PHASES, phase_mask(by_link).tolist())) == {
        "WT-ET": True,
        "EL-ET": True,
        "WL-WT": True,
        "EL-WL": True,
        "NT-ST": False,
        "SL-ST": True,
        "NT-NL": False,
        "NL-SL": True,
    }
    b = phase_state(by_link, PHASES.index("WT-ET"))
    for lk in by_link:
        assert b[lk.index] == ("G" if lk.movement in ("WT", "ET") else "g" if lk.turn == "R" else "r")


def test_trip_metrics_count_departure_delay_unfinished_and_undeparted_vehicles(tmp_path):
    trip = tmp_path / "trips.xml"
    trip.write_text("""<tripinfos>
  <tripinfo id="a" depart="10" departDelay="4" arrival="70" duration="60" timeLoss="20" waitingTime="5"/>
  <tripinfo id="b" depart="50" departDelay="30" arrival="-1" duration="50" timeLoss="40" waitingTime="25"/>
</tripinfos>""")
    m = tripinfo_metrics(trip)
    assert m["delay"] == (24 + 70) / 2 and m["trip_time"] == 55 and m["waiting_time"] == 15  # every record
    assert m["delay_finished"] == 20 and m["trip_time_finished"] == 60 and m["waiting_time_finished"] == 5
    assert (m["completed"], m["total"], m["undeparted"]) == (1, 2, 0)
    # a vehicle due at 60 s that never entered by the end (100 s) adds 40 s of delay and counts in the mean
    m = tripinfo_metrics(trip, {"a": 0.0, "b": 20.0, "c": 60.0}, end_s=100.0)
    assert m["delay"] == (24 + 70 + 40) / 3 and m["trip_time"] == 55 and m["undeparted"] == 1


def test_assign_arms_skewed():
    assert assign_arms({"a": 80.0, "b": 100.0, "c": 190.0}) in (
        {"a": "E", "b": "N", "c": "W"},
        {"a": "N", "b": "W", "c": "S"},
    )
    assert assign_arms({"a": 10.0, "b": 95.0, "c": 170.0, "d": 260.0}) == {"a": "E", "b": "N", "c": "W", "d": "S"}


def test_tee_env_rejects_masked_action(tee, tmp_path):
    env = SignalEnv(tee, seed=1, delta_s=15, yellow_s=3, horizon_s=120, run_dir=tmp_path)
    try:
        obs = env.reset()
        assert obs["C"].shape == (OBS_DIM,)
        for bad in (PHASES.index("NT-ST"), PHASES.index("NT-NL"), 8, -1):
            with pytest.raises(ValueError):
                env.step({"C": bad})
        done, k = False, 0
        while not done:
            _, r, done, info = env.step({"C": [0, 5][k // 2 % 2]})
            k += 1
            # MaxPressure's pressure: vehicles on the phase's incoming lanes minus its outgoing lanes, each once
            lanes = {lane: env.lanes[lane][0] for lane in env.lanes}
            ins, outs = {"WC_0", "EC_0"}, {"CE_0", "CW_0", "CS_0"}  # the east lane's left turn leads south
            want = sum(lanes[x] for x in ins) - sum(lanes[x] for x in outs)
            assert env.pressures()["C"][PHASES.index("WT-ET")] == want
            # GuideLight's variant: halting vehicles, per movement in minus per link out (right turns too), clipped at 0
            halt = {lane: env.lanes[lane][1] for lane in env.lanes}
            wt = max(halt["WC_0"] - halt["CE_0"] - halt["CS_0"], 0)
            et = max(halt["EC_0"] - halt["CW_0"] - halt["CS_0"], 0)
            assert env.pressures("halting")["C"][PHASES.index("WT-ET")] == wt + et
        assert k == 8 and info["metrics"]["completed"] > 0
    finally:
        env.close()


def test_grid4x4_short_episode(tmp_path):
    env = SignalEnv("grid4x4", seed=0, horizon_s=300, run_dir=tmp_path)
    try:
        assert len(env.tls_ids) == 16 and env.action_masks().shape == (16, 8) and env.action_masks().all()
        obs = env.reset()
        assert set(obs) == set(env.tls_ids)
        with pytest.raises(ValueError):
            env.step({t: 0 for t in env.tls_ids[1:]})  # a light without an action
        allowed = {t: np.flatnonzero(env.masks[t]) for t in env.tls_ids}
        done, k, rewards = False, 0, []
        while not done:
            obs, r, done, info = env.step({t: int(a[(k // 2) % len(a)]) for t, a in allowed.items()})
            rewards += list(r.values())
            assert all(np.isfinite(o).all() for o in obs.values())
            k += 1
        assert k == 20 and all(math.isfinite(x) and x <= 0 for x in rewards) and min(rewards) < 0
        m = info["metrics"]
        assert 0 < m["completed"] <= m["total"]
        assert all(math.isfinite(m[k]) and m[k] >= 0 for k in ("delay", "trip_time", "waiting_time"))
        assert Path(env.tripinfo).exists()
    finally:
        env.close()


def test_junction_lights_leave_the_joined_lights_to_their_sumo_programs(tmp_path):
    """lights = "junctions" (GESA's selection): on Ingolstadt21 the 6 light ids that are not junction ids are not
    controlled; every other map is unchanged; the run plan gets one agent per controlled light."""
    from scenarios.config import load_scenario
    from scenarios.signals.maps import controlled_lights, signal_map
    from scenarios.signals.plan import plan_signals

    net = sumolib.net.readNet(str(signal_map("ingolstadt21").net))
    every, junctions = controlled_lights(net), controlled_lights(net, "junctions")
    assert len(every) == 21 and len(junctions) == 15
    assert set(every) - set(junctions) == {"gneJ143", "gneJ207", "gneJ208", "gneJ210", "gneJ255", "gneJ257"}
    grid = sumolib.net.readNet(str(signal_map("grid4x4").net))
    assert controlled_lights(grid, "junctions") == controlled_lights(grid)
    cfg = load_scenario(
        Path(__file__).parents[1] / "scenarios" / "signals_espark.toml",
        ["world.map=ingolstadt21", "world.lights=junctions", "algo.method=max_pressure"],
    )
    plan = plan_signals(cfg, tmp_path)
    assert len(plan.agents) == 15 and sorted(plan.notes["lights"].values()) == junctions
