"""RSM-MASAC through real processes: segment rounds over the medium, losses, determinism, methods, resume."""

import csv
import json

import pytest
from conftest import ROOT, metrics, run_cli

SCENARIO = ROOT / "scenarios" / "figure8_rsm_masac.toml"
QUICK = [
    "world.episodes=1",
    "world.horizon=100",
    "world.test_every=0",
    "algo.U=2",
    "algo.sac={learning_starts=20, batch_size=32}",
    "algo.checkpoint_every=1",
]


def run(out, *sets, seed=3):
    args = ["run", str(SCENARIO), "--out", str(out), "--no-progress", "--seed", str(seed)]
    for s in [*QUICK, *sets]:
        args += ["--set", s]
    proc = run_cli(*args, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def rounds(out):
    keep = (
        "node",
        "round",
        "given_up",
        "donors",
        "a_plus",
        "zeta",
        "accepted_donors",
        "chunks_expected",
        "chunks_received",
    )
    return sorted(
        ({k: r[k] for k in keep} for r in metrics(out) if r["kind"] == "rsm_round"),
        key=lambda r: (r["node"], r["round"]),
    )


def test_lost_segments_time_out_and_the_same_seed_repeats_drops_and_mixes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    two = ["world.agents=2", "netsim.loss=0.3"]
    summary = run(a, *two)
    run(b, *two)
    ra = rounds(a)
    assert ra and {r["node"] for r in ra} == {"veh0", "veh1"}
    short = [r for r in ra if r["chunks_received"] < r["chunks_expected"]]
    assert short, "with 30 % loss some segment chunks must be lost"
    partial = [r for r in short if r["chunks_received"] > 0 and r["donors"]]
    assert partial, "a round with some chunks lost goes on with what arrived"
    nothing = [r for r in short if r["chunks_received"] == 0]
    assert all(not r["donors"] and not r["accepted_donors"] for r in nothing)  # nothing came: nothing mixed
    assert summary["results"]["chunk_delivery"] < 0.9
    # the medium's counters agree: segment responses were dropped for the extra loss
    links = (a / "links.csv").read_text()
    assert "segment_response" in links
    assert ra == rounds(b), "same seed: the same drops, donors, advantages and mixing weights"


def test_a_loss_on_segment_chunks_only_never_drops_a_request(tmp_path):
    out = tmp_path / "chunks-only"
    summary = run(out, "world.agents=2", "netsim.loss=0.4", 'netsim.loss_types=["segment_response"]')
    links = list(csv.DictReader((out / "links.csv").open()))
    lost = {t: sum(int(r["dropped_loss"]) for r in links if r["type"] == t) for t in {r["type"] for r in links}}
    assert lost["segment_request"] == 0 and lost["segment_response"] > 0, lost
    assert sum(v for t, v in lost.items() if t != "segment_response") == 0, lost
    assert 0.4 < summary["results"]["chunk_delivery"] < 0.8  # about 60 % of the chunks, none lost with a request


@pytest.mark.parametrize("method", ["isac", "avg_masac", "rsm_masac"])
def test_three_methods_finish_and_account(tmp_path, method):
    out = tmp_path / method
    summary = run(out, f"algo.method={method}", "world.agents=4")
    res = summary["results"]
    assert summary["status"] == "ok" and res["train_episodes"] == 1
    assert 0.0 <= res["final_score"] <= 1.0
    assert (out / "rounds.csv").exists() and (out / "plots" / "learning_curve.png").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "veh0.pt",
        "veh1.pt",
        "veh2.pt",
        "veh3.pt",
        "world.json",
    ]
    if method == "isac":
        assert res["rho_total"] == 0 and res["bytes_received"] == 0
        return
    assert res["rho_total"] > 0 and (out / "plots" / "heatmaps.png").exists()
    assert res["psi_gb"] == pytest.approx(res["rho_total"] * 4 * 68_098 / 1024**3)
    if method == "avg_masac":
        assert res["rho_ef"] == res["rho_total"]  # unselective: everything received is mixed
        assert res["bytes_per_agent_round"] > 0
        # the paper's Avg pulls replicas of segments from several donors, as RSM does (Table V's rho_total)
        donors = [d for r in metrics(out) if r["kind"] == "rsm_round" for d in r["donors"]]
        assert donors and max(len(d) for d in donors) > 1
        assert all(len(d) == len(set(d)) for d in donors)
    else:
        assert 0 <= res["rho_ef"] <= res["rho_total"]
        # Theorem 2's regulation of each replica is on record: zeta and its bound zeta_max, per replica
        for r in (m for m in metrics(out) if m["kind"] == "rsm_round"):
            assert len(r["zeta_max"]) == len(r["zeta"]) == len(r["a_plus"])
            assert all((m is None) == (a <= 0) for a, m in zip(r["a_plus"], r["zeta_max"]))
        header = (out / "rounds.csv").read_text().splitlines()[0].split(",")
        assert header[-2:] == ["zeta", "zeta_max"]
        if res["rho_ef"]:
            assert res["zeta"]["accepted"] == res["rho_ef"] and 0 <= res["zeta"]["at_cap"] <= 1
        # the evaluation command runs the saved policies; --resume goes on from the checkpoints
        proc = run_cli("eval", str(out), "--episodes", "1", timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "mean score" in proc.stdout
        resumed = tmp_path / "resumed"
        args = ["run", str(SCENARIO), "--out", str(resumed), "--no-progress", "--seed", "3", "--resume", str(out)]
        for s in [*QUICK, f"algo.method={method}", "world.agents=4", "world.episodes=2"]:
            args += ["--set", s]
        proc = run_cli(*args, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        before = {r["node"]: r for r in metrics(out) if r["kind"] == "cav_agent_episode"}
        after = [r for r in metrics(resumed) if r["kind"] == "cav_agent_episode"]
        assert {r["episode"] for r in after} == {1}
        for r in after:
            assert r["updates"] > before[r["node"]]["updates"]  # learning went on, not from scratch


def test_loss_sweep_plots_the_final_score_against_loss(tmp_path):
    from coordinator.sweep import plot_results

    rows = [{"netsim.loss": v, "final_score": s, "mixing_rate": m} for v, s, m in ((0, 0.5, 0.45), (0.3, 0.48, 0.3))]
    plot_results(tmp_path, rows, ["netsim.loss"])
    assert (tmp_path / "sweep_results.png").stat().st_size > 1000


def test_a_run_ending_with_a_test_episode_can_be_resumed(tmp_path):
    """The world's state (episodes done) is written at the run's end even when the last episode is a test and
    no periodic checkpoint is asked for: --resume needs it (it was written only after training episodes)."""
    out = tmp_path / "a"
    run(out, "algo.method=isac", "world.agents=2", "world.test_every=1", "algo.checkpoint_every=0")
    assert json.loads((out / "checkpoints" / "world.json").read_text())["episodes_done"] == 1
