"""The `netmarl` command line: run, sweep, dashboard, report, node, llm."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from agent_node import cli as node_cli
from scenarios.errors import ConfigError

from . import mqtt_bridge

# Heavy modules (scenario models and through them sumolib, the supervisor, plots) are imported inside the
# commands that need them: `netmarl node` must start on a device install without torch or SUMO.


DASHBOARD_NICE = 10  # `run --dashboard`: the page's server yields the CPU to the run it watches


def _run_dir(out: str | None, base: str, name: str) -> Path:
    return Path(out) if out else Path(base) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_run(args) -> int:
    from scenarios.config import load_scenario

    cfg = load_scenario(args.scenario, args.set, args.seed)
    if args.no_progress:
        cfg.run.progress = False
    if args.ray:  # every process a Ray actor, on that cluster ("local": a Ray instance on this machine)
        cfg.run.launcher, cfg.run.ray_address = "ray", None if args.ray == "local" else args.ray
    resume = None
    if args.resume:
        resume = Path(args.resume)
        if not (resume / "config.toml").exists():
            print(f"netmarl run: --resume {resume} is not a run folder (no config.toml)", file=sys.stderr)
            return 2
    name = f"{cfg.run.name}-resumed" if resume else cfg.run.name
    run_dir = _run_dir(args.out, cfg.run.out_dir, name)
    dashboard = None
    if args.dashboard:  # the page starts first and waits for the run folder
        from .dashboard.server import AddressError, start_beside_run

        try:
            dashboard, url = start_beside_run(run_dir, args.dashboard_host, args.dashboard_port)
        except AddressError as err:
            print(f"netmarl run --dashboard: {err}", file=sys.stderr)
            return 2
        print(f"dashboard: {url}", file=sys.stderr, flush=True)
    try:
        return _execute(cfg, run_dir, resume)
    finally:
        if dashboard is not None:
            dashboard.terminate()
            try:
                dashboard.wait(10)
            except subprocess.TimeoutExpired:
                dashboard.kill()
                dashboard.wait()
            print(f"dashboard stopped; to look at the run again: netmarl dashboard {run_dir}", file=sys.stderr)


def _execute(cfg, run_dir: Path, resume: Path | None) -> int:
    from .supervisor import Supervisor

    if getattr(cfg.algo, "method", None) == "espark":  # the loop runs many IPPO runs
        from .espark.loop import run_espark

        try:
            return run_espark(cfg, run_dir, resume)
        except (ValueError, ConfigError) as err:
            print(f"netmarl run: {err}", file=sys.stderr)
            return 2
    return Supervisor(cfg, run_dir, resume).execute()


def cmd_dashboard(args) -> int:
    from .dashboard.data import NotARunError, folder_kind, latest_run
    from .dashboard.server import AddressError, check_port, serve

    if args.parent is not None:  # beside a run: the run's processes come first (a watcher must not slow them)
        os.nice(DASHBOARD_NICE)
    root = Path(args.run_dir) if args.run_dir else latest_run(Path("runs"))
    if root is None:
        print("netmarl dashboard: name a run or sweep folder (there is none under ./runs)", file=sys.stderr)
        return 2
    try:
        if not args.wait:
            folder_kind(root)
        port = check_port(args.host, args.port)
    except (NotARunError, AddressError) as err:
        print(f"netmarl dashboard: {err}", file=sys.stderr)
        return 2
    url = f"http://{args.host}:{port}/"
    ready = lambda: print(f"dashboard of {root} at {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)  # noqa: E731
    try:
        serve(root, args.host, port, wait=args.wait, parent=args.parent, ready=ready)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_export(args) -> int:
    from scenarios.kinds import run_tool

    try:
        written = run_tool(Path(args.run_dir), "export")(Path(args.run_dir), args.agent, Path(args.out))
    except (FileNotFoundError, ValueError) as err:
        print(f"netmarl export: {err}", file=sys.stderr)
        return 2
    for agent, path in written.items():
        print(f"{agent}: {path}")
    return 0


def cmd_eval(args) -> int:
    from scenarios.kinds import run_tool

    try:
        run_dir = Path(args.run_dir)
        result = run_tool(run_dir, "evaluate")(run_dir, episodes=args.episodes, deterministic=not args.stochastic)
    except (FileNotFoundError, ValueError) as err:
        print(f"netmarl eval: {err}", file=sys.stderr)
        return 2
    for row in result["episodes"]:
        print(
            f"episode {row['episode']}: score {row['score']:.4f} ({row['steps']} steps"
            f"{', collision' if row['collided'] else ''})"
        )
    print(
        f"mean score {result['score']:.4f} over {len(result['episodes'])} episodes "
        f"({'deterministic' if not args.stochastic else 'stochastic'} policies of {len(result['agents'])} agents)"
    )
    return 0


def cmd_sweep(args) -> int:
    from scenarios.config import load_scenario

    from .sweep import run_sweep

    cfg = load_scenario(args.scenario, args.set, args.seed)
    extra = ["run.progress=false"] if args.no_progress else []
    out = _run_dir(args.out, cfg.run.out_dir, f"sweep-{cfg.run.name}")
    if args.resume and not args.out:
        raise ConfigError("netmarl sweep --resume: name the sweep folder with --out")
    return run_sweep(
        Path(args.scenario),
        args.grid,
        [*args.set, *extra],
        out,
        args.seed,
        ray_address=args.ray,
        resume=args.resume,
        point_cpus=args.point_cpus,
    )


def cmd_report(args) -> int:
    from . import report

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.toml").exists():
        print(f"netmarl report: {run_dir} is not a run folder (no config.toml)", file=sys.stderr)
        return 2
    if (run_dir / "espark" / "candidates.jsonl").exists():  # an eSpark run: its copies are runs of their own
        from .espark.plots import describe_run

        print(describe_run(run_dir))
        return 0
    for path in report.make_plots(run_dir):
        print(f"plot: {path}")
    print(report.format_summary(report.summarize(run_dir)))
    return 0


def cmd_llm_serve(args) -> int:
    from .llm.local_server import LocalServer, LocalServerError

    server = LocalServer(model=args.model, port=args.port, n_ctx=args.n_ctx, threads=args.threads)
    try:
        server.start()
    except LocalServerError as err:
        print(f"netmarl llm serve: {err}", file=sys.stderr)
        return 2
    print(f"local LLM {args.model} serving at {server.base_url} (OpenAI-compatible); Ctrl-C stops it", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_keys_generate(args) -> int:
    from protocols.security import KeyPair, write_key_pair

    try:
        public, secret = write_key_pair(args.out, args.name, KeyPair.generate())
    except FileExistsError as err:
        print(f"netmarl keys generate: {err.filename} exists; not overwritten", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"netmarl keys generate: {err}", file=sys.stderr)
        return 2
    print(f"public key: {public}  (give it to the coordinator: copy it into its security.allow_dir)")
    print(f"secret key: {secret}  (mode 0600; keep it on this machine: netmarl node --key {secret})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="netmarl", description="decentralized multi-process MARL over real sockets")
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (("run", "run a scenario"), ("sweep", "one run per grid point, then a table and plot")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("scenario", help="scenario TOML file")
        s.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. netsim.range_m=120"
        )
        s.add_argument("--out", help="output folder (default: <run.out_dir>/<name>-<time>)")
        s.add_argument("--seed", type=int, help="run seed (overrides run.seed)")
        s.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name == "run":
            s.add_argument("--resume", metavar="RUN_DIR", help="start from that run's checkpoints (a new run folder)")
            s.add_argument(
                "--ray", metavar="ADDRESS", help='place every process on this Ray cluster ("local": one here)'
            )
            s.add_argument("--dashboard", action="store_true", help="serve the live dashboard beside the run")
            s.add_argument("--dashboard-port", type=int, default=8050, help="its port (default 8050; 0: any free)")
            s.add_argument("--dashboard-host", default="127.0.0.1", help="its address (default loopback only)")
        if name == "sweep":
            s.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2", help="a swept field")
            s.add_argument("--ray", metavar="ADDRESS", help='run the points as Ray tasks on this cluster ("local")')
            s.add_argument("--point-cpus", type=float, default=1.0, help="CPUs Ray reserves for each point")
            s.add_argument("--resume", action="store_true", help="read the points the --out folder finished")
        s.set_defaults(func=cmd_run if name == "run" else cmd_sweep)
    d = sub.add_parser("dashboard", help="a live web page of a run or sweep (the map, links, learning curves)")
    d.add_argument("run_dir", nargs="?", help="run or sweep folder (default: the newest under ./runs)")
    d.add_argument("--port", type=int, default=8050, help="port (default 8050; 0: any free one)")
    d.add_argument("--host", default="127.0.0.1", help="address to serve on (default loopback only)")
    d.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)  # the folder is still to come (run's own)
    d.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # end when this process (the run) is gone
    d.set_defaults(func=cmd_dashboard)
    x = sub.add_parser("export", help="write trained policies as portable files (numpy only, for devices)")
    x.add_argument("run_dir")
    x.add_argument("--agent", help="one agent (default: every agent with a checkpoint)")
    x.add_argument("--out", required=True, help="output file (with --agent) or folder (AGENT.npz each)")
    x.set_defaults(func=cmd_export)
    e = sub.add_parser("eval", help="run a CAV run's saved policies and report the score")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=3)
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean")
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser("report", help="re-draw plots and print the summary of a finished run")
    r.add_argument("run_dir")
    r.set_defaults(func=cmd_report)
    n = sub.add_parser("node", help="run one agent process (by hand or on a device)")
    node_cli.add_arguments(n)
    n.set_defaults(func=node_cli.run)
    b = sub.add_parser("bridge", help="let nodes join the run through an MQTT broker (coordinator/mqtt_bridge.py)")
    mqtt_bridge.add_arguments(b)
    b.set_defaults(func=mqtt_bridge.cmd_bridge)
    keys = sub.add_parser("keys", help="CURVE keys").add_subparsers(dest="keys_command", required=True)
    gen = keys.add_parser("generate", help="write a key pair NAME.key (public) and NAME.key_secret")
    gen.add_argument("name", help="the node id the key is for (or 'coordinator')")
    gen.add_argument("--out", default="keys", help="folder to write into (default ./keys)")
    gen.set_defaults(func=cmd_keys_generate)
    llm = sub.add_parser("llm", help="the local LLM").add_subparsers(dest="llm_command", required=True)
    serve = llm.add_parser("serve", help="serve the offline default model on loopback (OpenAI-compatible)")
    serve.add_argument("--model", default="smollm2")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--n-ctx", type=int, default=4096)
    serve.add_argument("--threads", type=int, default=2)
    serve.set_defaults(func=cmd_llm_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `netmarl` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # the terminal gets warnings; logs/ get the rest
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"netmarl: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
