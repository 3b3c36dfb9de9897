"""sumo-rl's own PettingZoo traffic-signal environment (`sumo_rl.parallel_env`), with the SUMO this project installs
(the eclipse-sumo wheel sets SUMO_HOME, which sumo-rl needs before it is imported) and the networks sumo-rl ships
named by folder: world.env = "scenarios.pettingzoo.sumo_rl_env:parallel_env", env_kwargs = { net = "2x2grid" }."""

from __future__ import annotations

from pathlib import Path


def parallel_env(net: str = "2x2grid", route: str | None = None, libsumo: bool = True, **kwargs):
    """sumo_rl.parallel_env on sumo-rl's bundled network `net` (a folder under sumo_rl/nets, e.g. "2x2grid",
    "RESCO/grid4x4"): its one .net.xml and `route` (a file name in that folder; default: its first .rou.xml).
    libsumo: SUMO in this process (sumo-rl's LIBSUMO_AS_TRACI; read when sumo_rl is first imported), not a SUMO
    process over TraCI (a second to connect at every reset). kwargs go to sumo-rl's SumoEnvironment as they are
    (num_seconds, delta_time, reward_fn, ...)."""
    import os

    import sumo  # noqa: F401  (sets SUMO_HOME)

    if libsumo:
        os.environ.setdefault("LIBSUMO_AS_TRACI", "1")
    import sumo_rl
    import sumo_rl.environment.env as sumo_rl_env
    from pettingzoo.utils.agent_selector import AgentSelector

    if not isinstance(sumo_rl_env.agent_selector, type):  # sumo-rl 1.4.5 imports `agent_selector`, a class until
        sumo_rl_env.agent_selector = AgentSelector  # PettingZoo 1.25 renamed it AgentSelector (mpe2 needs 1.25 on)

    folder = Path(sumo_rl.__file__).parent / "nets" / net
    nets = sorted(folder.glob("*.net.xml"))
    routes = [folder / route] if route else sorted(folder.glob("*.rou.xml"))
    if len(nets) != 1 or not routes or not routes[0].exists():
        known = sorted(str(p.parent.relative_to(folder.parent)) for p in folder.parent.glob("**/*.net.xml"))
        raise ValueError(f"sumo-rl network {net!r}: no single .net.xml and route file there; bundled: {known}")
    return sumo_rl.parallel_env(net_file=str(nets[0]), route_file=str(routes[0]), **kwargs)
