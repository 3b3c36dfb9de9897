"""Command line of a standalone agent process (`netmarl node`, `python -m agent_node`)."""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib

from pydantic import ValidationError

from protocols.security import join_run

from .node import NodeConfig, run_node

STATUS_INTERVAL_S = 10.0  # a hand-started node reports its status (launched ones: none, their roles report)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `netmarl node`."""
    p.add_argument("--config", help="TOML file with the node settings (flags override it)")
    p.add_argument("--id", dest="node_id", help="node id (unique in the run)")
    p.add_argument("--coordinator", help="coordinator inbox endpoint, e.g. tcp://10.0.0.1:5555")
    p.add_argument(
        "--run",
        dest="run_dir",
        metavar="RUN_FOLDER",
        help="join a run on this machine by its folder: its coordinator, key and a fresh key of our own",
    )
    p.add_argument("--role", help="role plug-in name (default beacon)")
    p.add_argument("--policy", help="portable policy file to act with (role policy; made by `netmarl export`)")
    p.add_argument("--bind", help="own inbox endpoint to bind (default tcp://127.0.0.1:*)")
    p.add_argument(
        "--advertise",
        help="endpoint peers reach the inbox at, if not the bound one "
        "(behind NAT or a relay), e.g. tcp://203.0.113.7:6000",
    )
    p.add_argument(
        "--coordinator-timeout",
        dest="coordinator_timeout_s",
        type=float,
        metavar="S",
        help="stop when the coordinator stays silent this long (default 10; more rides out longer outages)",
    )
    p.add_argument(
        "--status-interval",
        dest="status_interval_s",
        type=float,
        metavar="S",
        help=f"a node_status metrics record this often, 0 for none (default {STATUS_INTERVAL_S:g})",
    )
    p.add_argument(
        "--key",
        help="CURVE: own secret key file ID.key_secret, or the folder holding it (made by `netmarl keys generate ID`)",
    )
    p.add_argument(
        "--coordinator-key",
        dest="coordinator_key",
        help="CURVE: the coordinator's public key, a file (RUN_FOLDER/coordinator.key) or Z85 text",
    )
    add_mqtt_arguments(p)


def add_mqtt_arguments(p: argparse.ArgumentParser) -> None:
    """The broker flags (shared with `netmarl bridge`)."""
    g = p.add_argument_group("MQTT", "reach the run through an MQTT broker and a `netmarl bridge` (protocols/mqtt.py)")
    g.add_argument(
        "--mqtt", dest="mqtt_broker", metavar="URL", help="broker, mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
    )
    g.add_argument("--fleet", help="topic namespace shared with the bridge (default 'default')")
    g.add_argument("--mqtt-username")
    g.add_argument("--mqtt-password", help="better: the NETMARL_MQTT_PASSWORD environment variable")
    g.add_argument("--mqtt-tls-ca", metavar="FILE", help="CA of the broker's certificate (enables TLS)")
    g.add_argument("--mqtt-tls-cert", metavar="FILE", help="client certificate (mutual TLS)")
    g.add_argument("--mqtt-tls-key", metavar="FILE", help="client key (mutual TLS)")


def mqtt_from_args(args: argparse.Namespace, data: dict | None = None) -> dict | None:
    """The [mqtt] settings: the file's table updated by the flags; None if neither gives any."""
    table = dict((data or {}).get("mqtt") or {})
    flags = {
        "broker": args.mqtt_broker,
        "fleet": args.fleet,
        "username": args.mqtt_username,
        "password": args.mqtt_password,
        "tls_ca": args.mqtt_tls_ca,
        "tls_cert": args.mqtt_tls_cert,
        "tls_key": args.mqtt_tls_key,
    }
    table.update({k: v for k, v in flags.items() if v is not None})
    return table or None


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    """Merge the TOML file and the flags into a validated NodeConfig."""
    data = {}
    if args.config:
        with open(args.config, "rb") as fh:
            data = tomllib.load(fh)
    data.update({k: v for k, v in vars(args).items() if k in NodeConfig.model_fields and v is not None})
    data.setdefault("status_interval_s", STATUS_INTERVAL_S)
    mqtt = mqtt_from_args(args, data)
    if mqtt is not None:
        data["mqtt"] = mqtt
    if getattr(args, "run_dir", None):
        endpoint, coordinator_key, secret = join_run(args.run_dir, data.get("node_id", ""))
        data.setdefault("coordinator", endpoint)
        if coordinator_key is not None:
            data.update(coordinator_key=coordinator_key, curve_secret=secret)
    return NodeConfig.model_validate(data)


def run(args: argparse.Namespace) -> int:
    """Validate the settings and run the node in the foreground."""
    try:
        cfg = config_from_args(args)
    except (ValidationError, ValueError, OSError, tomllib.TOMLDecodeError) as err:
        print(f"netmarl node: invalid settings: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, force=True, format=f"%(asctime)s {cfg.node_id} %(levelname)s %(name)s: %(message)s"
    )
    return run_node(cfg)


def main(argv: list[str] | None = None) -> int:
    """Parse argv and run."""
    p = argparse.ArgumentParser(prog="python -m agent_node", description="run one netmarl agent process")
    add_arguments(p)
    return run(p.parse_args(argv))
