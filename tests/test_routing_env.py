"""The event-driven routing environment on a tiny 2 x 2 grid in SUMO: decisions, observation, Eq. 32 over an episode."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scenarios.routing.env import RoutingEnv
from scenarios.routing.grid_map import build_grid
from scenarios.routing.maps import Trip
from scenarios.routing.sed.navigation import Navigator

# node layout as in tests/test_routing_obs.py: left0 (0,50) - A0 (50,50) - B0 (150,50) - right0 (200,50), y up;
# junction IDs are the sorted node ids: A0 0, A1 1, B0 2, B1 3, bottom0 4, bottom1 5, left0 6, left1 7,
# right0 8, right1 9, top0 10, top1 11
RIGHT1 = (200.0, 150.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_env")
    g = build_grid(out, junctions_x=2, junctions_y=2, spacing_m=100.0, attach_m=50.0, speed_limit=10.0)
    routes = out / "none.rou.xml"
    routes.write_text("<routes/>\n")  # no background traffic: every figure below is the agent's alone
    return g.net, routes


def test_first_decision_observation_and_episode_reward(tiny):
    net, routes = tiny
    env = RoutingEnv(net, routes, [Trip(0, "left0A0", "right1", 9, 2.0)], t_max=600.0)
    nav = Navigator(env.net)
    env.reset(seed=1)
    seen, total, xy0 = [], 0.0, None
    try:
        while not env.done:
            decisions, endings = env.tick()
            for d in decisions:
                if not seen:  # hand-computed: at A0 heading for right1; options A0A1, A0B0, A0bottom0, A0left0
                    assert d.junction == 0 and d.obs[0] == 0 and d.obs[1] == 9
                    assert list(d.obs[6:10]) == [1, 2, 4, 6]
                    assert np.all((d.obs[2:6] > 0) & (d.obs[2:6] <= 1))  # empty roads: (near) free flow
                    assert d.mask[:3].all() and d.reward == 0.0
                    xy0 = env.api.vehicle.getPosition("agent0")
                seen.append(d.junction)
                total += d.reward
                assert env.apply(0, d.edge, d.options, nav.action_for(d.edge, 9, "shortest_path"))
            for e in endings:
                assert e.arrived and not e.truncated
                total += e.reward
    finally:
        env.close()
    # the first decision's position and distance: Eq. 32 summed over the episode telescopes
    s = env.states[0]
    d0 = math.hypot(RIGHT1[0] - xy0[0], RIGHT1[1] - xy0[1])
    assert seen[0] == 0 and s.arrived
    bonus = 0.1 * env.t_max  # R_term = 0.1 T_max (240 at the paper's 2,400 s)
    assert total == pytest.approx(-(s.end_t - s.depart_t) + d0 + bonus, abs=1e-6)
    assert env.travel_times()[0] == s.end_t - s.depart_t
    series = env.reward_series(include_terminal=True)[0]
    assert np.nansum(series) == pytest.approx(total)  # the per-second pieces (docs/reled.md, RL-8) add up to the same
    assert np.nansum(env.reward_series()[0]) == pytest.approx(total - bonus)  # RVI's series: no arrival spike


def test_a_vehicle_that_never_gets_home_is_truncated_with_a_bootstrap_observation(tiny):
    net, routes = tiny
    env = RoutingEnv(net, routes, [Trip(0, "left0A0", "right1", 9, 0.0)], t_max=60.0)
    env.reset(seed=1)
    endings = []
    try:
        while not env.done:
            decisions, ended = env.tick()
            endings += ended
            for d in decisions:  # ride back and forth between left0 and A0: never at right1
                u_turn = [k for k, o in enumerate(d.options) if o is not None and o.edge_id in ("A0left0", "left0A0")]
                assert env.apply(0, d.edge, d.options, u_turn[0])
    finally:
        env.close()
    (end,) = endings
    assert end.truncated and not end.arrived and end.obs is not None and end.obs[1] == 9
    assert env.travel_times()[0] == pytest.approx(60.0 - env.states[0].depart_t)


def test_every_agent_of_the_city_map_gets_home_through_its_short_roads(tmp_path):
    """Ingolstadt has chains of roads shorter than a second's drive: the decision for their junctions is taken
    before the vehicle reaches them (same tick, follow-ups), so a vehicle following shortest-time roads never
    runs off the end of its route; before that fix most of them left the net on the way."""
    from scenarios.routing.maps import build_map, fixed_trips

    city = build_map("city", tmp_path)
    routes = tmp_path / "none.rou.xml"
    routes.write_text("<routes/>\n")
    env = RoutingEnv(city.net, routes, fixed_trips(city.net, 10, 0), t_max=1200.0)
    nav = Navigator(env.net)
    env.reset(seed=0)
    try:
        while not env.done:
            decisions, _ = env.tick()
            while decisions:
                for d in decisions:
                    action = nav.action_for(
                        d.edge, env.states[d.agent].trip.destination_index, "shortest_time", env.travel_time
                    )
                    assert env.apply(d.agent, d.edge, d.options, action)
                decisions = env.follow_ups([d.agent for d in decisions])
    finally:
        env.close()
    assert all(s.arrived for s in env.states.values())
