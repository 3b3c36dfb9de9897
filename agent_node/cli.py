"""Command line of a standalone agent process (`netmarl node`, `python -m agent_node`)."""
from __future__ import annotations

import argparse
import logging
import sys
import tomllib

from pydantic import ValidationError

from .node import NodeConfig, run_node


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `netmarl node`."""
    p.add_argument("--config", help="TOML file with the node settings (flags override it)")
    p.add_argument("--id", dest="node_id", help="node id (unique in the run)")
    p.add_argument("--coordinator", help="coordinator inbox endpoint, e.g. tcp://10.0.0.1:5555")
    p.add_argument("--role", help="role plug-in name (default beacon)")
    p.add_argument("--bind", help="own inbox endpoint to bind (default tcp://127.0.0.1:*)")


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    """Merge the TOML file and the flags into a validated NodeConfig."""
    data = {}
    if args.config:
        with open(args.config, "rb") as fh:
            data = tomllib.load(fh)
    data.update({k: v for k, v in vars(args).items() if k in NodeConfig.model_fields and v is not None})
    return NodeConfig.model_validate(data)


def run(args: argparse.Namespace) -> int:
    """Validate the settings and run the node in the foreground."""
    try:
        cfg = config_from_args(args)
    except (ValidationError, OSError, tomllib.TOMLDecodeError) as err:
        print(f"netmarl node: invalid settings: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, force=True, format=f"%(asctime)s {cfg.node_id} %(levelname)s %(name)s: %(message)s")
    return run_node(cfg)


def main(argv: list[str] | None = None) -> int:
    """Parse argv and run."""
    p = argparse.ArgumentParser(prog="python -m agent_node", description="run one netmarl agent process")
    add_arguments(p)
    return run(p.parse_args(argv))
