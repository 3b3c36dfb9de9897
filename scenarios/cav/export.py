"""`netmarl export`: a CAV run's checkpointed actors as portable policy files (weights + description)."""

from __future__ import annotations

from pathlib import Path

from agent_node.learners.rsm.export import export_sac

from .evaluate import load_actors


def export_run(run_dir: Path, agent: str | None, out: Path) -> dict[str, Path]:
    """Export one agent's actor to the file `out`, or every checkpointed agent's to out/AGENT.npz."""
    checkpoints = run_dir / "checkpoints"
    if not checkpoints.is_dir():
        raise FileNotFoundError(f"{run_dir} has no checkpoints/ folder (not a CAV training run, or none written)")
    agents = [agent] if agent else sorted(p.stem for p in checkpoints.glob("*.pt"))
    if not agents:
        raise FileNotFoundError(f"{checkpoints} holds no agent checkpoints")
    learners = load_actors(checkpoints, agents)
    if agent is None:
        out.mkdir(parents=True, exist_ok=True)
    meta = {"run": run_dir.name}
    return {a: export_sac(sac, out if agent else out / f"{a}.npz", dict(meta, agent=a)) for a, sac in learners.items()}
