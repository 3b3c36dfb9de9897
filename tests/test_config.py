"""Tests of scenario loading (scenarios.config): the shipped file, --set overrides, plain errors, and CLI exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent_node.roles.beacon import BeaconSettings
from scenarios.config import ConfigError, ScenarioConfig, apply_override, load_scenario, parse_value

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "figure8_beacons.toml"
NETMARL = Path(sys.executable).parent / "netmarl"


# ------------------------------------------------------------------ loading and overrides
def test_shipped_scenario_loads():
    cfg = load_scenario(SCENARIO)
    assert isinstance(cfg, ScenarioConfig)
    assert cfg.run.name == "figure8_beacons" and cfg.run.seed == 1 and cfg.run.steps == 600
    assert cfg.world.kind == "figure8" and cfg.world.vehicles == 14 and cfg.world.agents == 14
    assert cfg.netsim.model == "log_distance" and cfg.netsim.range_m == 250.0
    assert cfg.netsim.log_distance.sensitivity_dbm == -85.0
    assert cfg.role["name"] == "beacon"
    assert BeaconSettings.model_validate(cfg.role).beacon_hz == 10.0
    assert load_scenario(str(SCENARIO)) == cfg  # str path too


def test_overrides_of_every_kind():
    cfg = load_scenario(
        SCENARIO, ["netsim.range_m=120", "netsim.model=unit_disk", "run.progress=false", "role.beacon_hz=5"]
    )
    assert cfg.netsim.range_m == 120.0 and isinstance(cfg.netsim.range_m, float)  # int -> float field
    assert cfg.netsim.model == "unit_disk"  # bare string
    assert cfg.run.progress is False  # bool
    assert cfg.role["beacon_hz"] == 5
    assert BeaconSettings.model_validate(cfg.role).beacon_hz == 5.0
    assert cfg.world.vehicles == 14  # the rest of the file is untouched


def test_nested_and_new_table_overrides():
    cfg = load_scenario(
        SCENARIO,
        [
            "netsim.log_distance.exponent=2.5",  # nested table present in the file
            "netsim.burst.enabled=true",  # nested table absent from the file
            "netsim.burst.p_good_to_bad=0.05",
            "netsim.logistic.a=0.9",
            'run.name="my run"',  # quoted string
            "world.agents=4",
            "run.step_deadline_s=1e-1",
            " netsim.mtu_bytes = 1400 ",  # spaces around key and value
        ],
    )
    assert cfg.netsim.log_distance.exponent == 2.5
    assert cfg.netsim.log_distance.sensitivity_dbm == -85.0
    assert cfg.netsim.burst.enabled is True and cfg.netsim.burst.p_good_to_bad == 0.05
    assert cfg.netsim.logistic.a == 0.9
    assert cfg.run.name == "my run"
    assert cfg.world.agents == 4
    assert cfg.run.step_deadline_s == 0.1
    assert cfg.netsim.mtu_bytes == 1400


def test_later_override_wins_and_seed_argument():
    cfg = load_scenario(SCENARIO, ["run.seed=3", "netsim.range_m=10", "netsim.range_m=20"], seed=9)
    assert cfg.netsim.range_m == 20.0
    assert cfg.run.seed == 9  # the seed argument (--seed) beats file and --set


@pytest.mark.parametrize(
    "text,value",
    [
        ("120", 120),
        ("1.5", 1.5),
        ("6e6", 6e6),
        ("true", True),
        ("false", False),
        ('"x y"', "x y"),
        ("unit_disk", "unit_disk"),
        ("[1, 2]", [1, 2]),
        ("", ""),
        ("-3", -3),
    ],
)
def test_parse_value(text, value):
    out = parse_value(text)
    assert out == value and type(out) is type(value)


def test_apply_override_builds_nested_tables():
    data: dict = {}
    apply_override(data, "a.b.c=1")
    apply_override(data, "a.d=x")
    assert data == {"a": {"b": {"c": 1}, "d": "x"}}


def test_scenario_without_role_table_gets_beacon(tmp_path):
    path = tmp_path / "min.toml"
    path.write_text("[run]\nsteps = 5\n")
    cfg = load_scenario(path)
    assert cfg.run.steps == 5 and cfg.role == {"name": "beacon"}
    cfg = load_scenario(path, ["role.beacon_hz=2"])
    assert BeaconSettings.model_validate(cfg.role).beacon_hz == 2.0


# ------------------------------------------------------------------ errors name the field
@pytest.mark.parametrize(
    "override,words",
    [
        ("netsim.range_m=-1", ["netsim.range_m", "greater than 0"]),
        ("netsim.range_m=0", ["netsim.range_m"]),
        ("netsim.range_m=far", ["netsim.range_m", "far"]),
        ("netsim.range_m=nan", ["netsim.range_m"]),
        ("netsim.model=wifi7", ["netsim.model", "wifi7"]),
        ("netsim.mode=psychic", ["netsim.mode"]),
        ("netsim.burst.p_good_to_bad=1.5", ["netsim.burst.p_good_to_bad"]),
        ("netsim.log_distance.colour=1", ["netsim.log_distance.colour", "Extra inputs"]),
        ("netsim.mtu_bytes=10", ["netsim.mtu_bytes"]),
        ("netsim.fragment_header_bytes=1500", ["fragment_header_bytes"]),
        ("world.colour=1", ["world.colour", "Extra inputs"]),
        ("colour=1", ["colour"]),
        ("world.kind=moon", ["world.kind"]),
        ("world.vehicles=0", ["world.vehicles"]),
        ("world.agents=-1", ["world.agents"]),
        ("world.agents=15", ["world.agents", "world.vehicles"]),
        ("run.steps=0", ["run.steps"]),
        ("run.on_node_failure=panic", ["run.on_node_failure"]),
        ("run.progress=maybe", ["run.progress"]),
        ("run.name=true", ["run.name"]),
        ("role.beacon_hz=0", ["role.beacon_hz"]),
        ("role.beacon_bytes=10", ["role.beacon_bytes"]),
        ("role.colour=1", ["role.colour"]),
        ("role.name=nope", ["role.name", "nope"]),
        ("role=5", ["role"]),
        ("netsim=5", ["netsim"]),
        ("netsim.range_m.x=1", ["range_m", "not a table"]),
        ("netsim.range_m", ["netsim.range_m", "key=value"]),
        ("=5", ["key=value"]),
        ("", ["key=value"]),
    ],
)
def test_invalid_values_name_the_field(override, words):
    with pytest.raises(ConfigError) as info:
        load_scenario(SCENARIO, [override])
    text = str(info.value)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def test_missing_file():
    with pytest.raises(ConfigError, match="no such scenario file") as info:
        load_scenario(ROOT / "scenarios" / "does_not_exist.toml")
    assert "does_not_exist.toml" in str(info.value)


def test_broken_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[run]\nsteps = = 5\n[world\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_scenario(path)
    assert "broken.toml" in str(info.value)


def test_wrong_type_in_file_names_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[netsim]\nrange_m = "far"\n[world]\nvehicles = 2\nagents = 3\n')
    with pytest.raises(ConfigError, match="netsim.range_m"):
        load_scenario(path)


@pytest.mark.parametrize("kind", ["directory", "non-utf8"])
def test_unreadable_file_is_a_config_error(tmp_path, kind):
    if kind == "directory":
        path = tmp_path
    else:
        path = tmp_path / "latin1.toml"
        path.write_bytes(b'[run]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError):
        load_scenario(path)


@pytest.mark.parametrize("override", ["role.name=[1]", "role.name={a=1}"])
def test_non_string_role_name_is_a_config_error(override):
    with pytest.raises(ConfigError, match="role.name"):
        load_scenario(SCENARIO, [override])


# ------------------------------------------------------------------ the CLI
def netmarl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [str(NETMARL)] if NETMARL.exists() else [sys.executable, "-m", "coordinator.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_cli_invalid_set_exits_2_and_starts_nothing(tmp_path):
    out = tmp_path / "run-out"
    res = netmarl("run", str(SCENARIO), "--set", "netsim.range_m=-5", "--out", str(out), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "range_m" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # not even a default runs/ folder


def test_cli_malformed_set_and_missing_file_exit_2(tmp_path):
    out = tmp_path / "run-out"
    res = netmarl("run", str(SCENARIO), "--set", "netsim.range_m", "--out", str(out), cwd=tmp_path)
    assert res.returncode == 2 and "key=value" in res.stderr and not out.exists()
    res = netmarl("run", str(tmp_path / "nope.toml"), "--out", str(out), cwd=tmp_path)
    assert res.returncode == 2 and "no such scenario file" in res.stderr and not out.exists()
    res = netmarl(
        "sweep",
        str(SCENARIO),
        "--grid",
        "netsim.range_m=50,100",
        "--set",
        "role.beacon_hz=0",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert res.returncode == 2 and "role.beacon_hz" in res.stderr and not out.exists()


def test_cli_node_without_id_exits_2(tmp_path):
    res = netmarl("node", "--coordinator", "tcp://127.0.0.1:9", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "node_id" in res.stderr
    res = netmarl("node", cwd=tmp_path)
    assert res.returncode == 2


def test_cli_report_on_non_run_folder_exits_2(tmp_path):
    res = netmarl("report", str(tmp_path), cwd=tmp_path)
    assert res.returncode == 2
    assert "not a run folder" in res.stderr
    res = netmarl("report", str(tmp_path / "missing"), cwd=tmp_path)
    assert res.returncode == 2


def test_too_many_vehicles_and_a_reused_run_folder_exit_2(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "coordinator.cli",
            "run",
            str(SCENARIO),
            "--set",
            "world.vehicles=80",
            "--set",
            "world.agents=10",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 2 and "world.vehicles" in res.stderr and not (tmp_path / "x").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "config.toml").write_text("")
    res = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "run", str(SCENARIO), "--out", str(used)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 2 and "already holds a run" in res.stderr


def test_mqtt_with_curve_is_refused_with_a_reason(tmp_path):
    from scenarios.config import ConfigError, load_scenario

    sets = ["mqtt.broker=mqtt://127.0.0.1:1883", "security.curve=on"]
    with pytest.raises(ConfigError, match="cannot be combined with CURVE"):
        load_scenario(ROOT / "scenarios" / "figure8_beacons.toml", sets)
    assert load_scenario(ROOT / "scenarios" / "figure8_beacons.toml", [sets[0], "security.curve=off"]).mqtt


@pytest.mark.parametrize("curve", ["on", "off"])
def test_a_coordinator_bind_that_cannot_be_bound_exits_2_and_leaves_nothing(tmp_path, curve):
    """A busy port or an address that is not this machine's: exit 2 with the reason, no half-made run folder
    (which would block a rerun with the same --out)."""
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        for bind in (f"tcp://127.0.0.1:{busy.getsockname()[1]}", "tcp://192.0.2.1:5555", "tcp://nonsense:1"):
            out = tmp_path / "run"
            res = netmarl(
                "run",
                str(SCENARIO),
                "--out",
                str(out),
                "--no-progress",
                "--set",
                f"run.coordinator_bind={bind}",
                "--set",
                f"security.curve={curve}",
                cwd=tmp_path,
            )
            assert res.returncode == 2, (bind, res.stderr[-2000:])
            assert "run.coordinator_bind" in res.stderr and "Traceback" not in res.stderr
            assert not out.exists(), bind
    finally:
        busy.close()


def test_cli_export_and_eval_ask_the_runs_kind(tmp_path):
    """`export` and `eval` are tools of a world kind (the CAV kind's): another kind's run gets a clear error."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('[world]\nkind = "signals"\n')
    for command in (["export", str(run), "--out", str(tmp_path / "out")], ["eval", str(run)]):
        res = netmarl(*command, cwd=tmp_path)
        assert res.returncode == 2 and "'signals' run" in res.stderr and "kind cav" in res.stderr, res.stderr
    res = netmarl("eval", str(tmp_path / "missing"), cwd=tmp_path)
    assert res.returncode == 2 and "not a run folder" in res.stderr
