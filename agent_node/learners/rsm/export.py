"""Write an RSM-MASAC actor as a portable policy file (agent_node.portable_policy format), readable without torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agent_node.learners.sac import SIGMA_FLOOR, Actor
from agent_node.portable_policy import DESCRIPTION_KEY, FORMAT, KIND, VERSION, PortablePolicy


def _linear(name: str, layer) -> dict[str, Any]:
    return {
        "type": "linear",
        "in": layer.in_features,
        "out": layer.out_features,
        "weight": f"{name}.weight",
        "bias": f"{name}.bias",
    }


def export_actor(actor: Actor, bound: float, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write actor (relu(fc2(relu(fc1))) -> fc_mu, softplus(fc_std) + 1e-5) with action bound to path (.npz bytes).

    The file is read back and validated before returning, so a written file always loads.
    """
    arrays = {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in actor.state_dict().items()}
    description = {
        "format": FORMAT,
        "version": VERSION,
        "kind": KIND,
        "obs_dim": actor.fc1.in_features,
        "act_dim": actor.fc_mu.out_features,
        "trunk": [_linear("fc1", actor.fc1), {"type": "relu"}, _linear("fc2", actor.fc2), {"type": "relu"}],
        "heads": {
            "mu": [_linear("fc_mu", actor.fc_mu)],
            "std": [_linear("fc_std", actor.fc_std), {"type": "softplus"}],
        },
        "std_floor": SIGMA_FLOOR,
        "action_bound": float(bound),
        "meta": meta or {},
    }
    path = Path(path)
    with path.open("wb") as f:  # a file object: np.savez would otherwise append ".npz" to the name
        np.savez(f, **arrays, **{DESCRIPTION_KEY: np.array(json.dumps(description))})
    PortablePolicy.load(path)
    return path


def export_sac(sac, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """export_actor for a SAC learner: its actor and cfg.action_bound."""
    return export_actor(sac.actor, sac.cfg.action_bound, path, meta)
