"""Portable policy export (issue 8): numpy inference matches torch, tampered files are refused, no torch needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agent_node.learners.rsm.export import export_actor, export_sac
from agent_node.learners.sac import SAC, SACConfig
from agent_node.portable_policy import DESCRIPTION_KEY, PortablePolicy

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _random_sac(bound: float, seed: int, gain: float | None = None) -> SAC:
    """A SAC learner with seeded random actor weights: SAC's own init (init_seed), or N(0, gain / fan_in) if gain."""
    sac = SAC(SACConfig(action_bound=bound, init_seed=seed))
    if gain is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in sac.actor.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / p.shape[-1]) ** 0.5)
    return sac


def _tamper(src: Path, dst: Path, key: str, value) -> None:
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data[key] = value
    with dst.open("wb") as f:
        np.savez(f, **data)


@pytest.mark.parametrize("bound", [3.0, 1.5])
def test_parity_with_torch_on_1000_observations(tmp_path, bound):
    sac = _random_sac(bound, seed=7)
    path = export_sac(sac, tmp_path / "agent.policy", meta={"agent": 0})
    assert path == tmp_path / "agent.policy" and path.exists()  # written exactly where asked
    pol = PortablePolicy.load(path)
    obs = np.random.default_rng(1).normal(0.0, 3.0, size=(1000, 6)).astype(np.float32)

    want, _ = sac.act(obs, deterministic=True)
    got = pol.act(obs)
    assert got.shape == want.shape == (1000, 1) and got.dtype == np.float32
    assert np.max(np.abs(got - want)) < 1e-5
    assert np.all(np.abs(got) <= bound) and np.max(np.abs(got)) > 0.5 * bound  # much of the range is exercised
    with torch.no_grad():
        mu_t, sigma_t = sac.actor(torch.from_numpy(obs))
    mu, sigma = pol.distribution(obs)
    np.testing.assert_allclose(mu, mu_t.numpy(), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(sigma, sigma_t.numpy(), atol=1e-5, rtol=1e-5)
    # single observation: [o] -> [a], same as torch
    np.testing.assert_allclose(pol.act(obs[3]), sac.act(obs[3], deterministic=True)[0], atol=1e-5)
    assert pol.act(obs[3]).shape == (1,)
    text = pol.describe()
    assert "linear 6x256" in text and f"{bound:g} * tanh(mu)" in text and "68,098" in text


def test_parity_when_saturated(tmp_path):
    """Large weights (|mu| up to ~10, tanh saturated): still torch's action; float32 rounding grows with |mu|."""
    sac = _random_sac(3.0, seed=7, gain=2.0)
    pol = PortablePolicy.load(export_sac(sac, tmp_path / "wide.npz"))
    obs = np.random.default_rng(2).normal(0.0, 3.0, size=(1000, 6)).astype(np.float32)
    got, want = pol.act(obs), sac.act(obs, deterministic=True)[0]
    assert np.max(np.abs(got - want)) < 5e-5 and np.all(np.abs(got) <= 3.0)
    assert np.mean(np.abs(got) > 2.9) > 0.5


def test_export_actor_direct_and_description(tmp_path):
    sac = _random_sac(3.0, seed=3)
    export_actor(sac.actor, 3.0, tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        desc = json.loads(str(z[DESCRIPTION_KEY]))
        assert all(z[k].dtype == np.float32 for k in z.files if k != DESCRIPTION_KEY)
    assert desc["std_floor"] == 1e-5 and desc["action_bound"] == 3.0
    assert [layer["type"] for layer in desc["trunk"]] == ["linear", "relu", "linear", "relu"]
    assert [layer["type"] for layer in desc["heads"]["std"]] == ["linear", "softplus"]


def test_loader_refuses_tampered_files(tmp_path):
    src = export_actor(_random_sac(3.0, seed=5).actor, 3.0, tmp_path / "ok.npz")
    bad = tmp_path / "bad.npz"

    _tamper(src, bad, "fc2.weight", np.zeros((256, 255), np.float32))
    with pytest.raises(ValueError, match=r"trunk\[2\].*'fc2.weight' has shape \[256, 255\], expected \[256, 256\]"):
        PortablePolicy.load(bad)

    _tamper(src, bad, "fc_mu.bias", np.zeros(1, np.float64))
    with pytest.raises(ValueError, match="dtype float64, expected float32"):
        PortablePolicy.load(bad)

    with np.load(src, allow_pickle=False) as z:
        desc = json.loads(str(z[DESCRIPTION_KEY]))
    desc["trunk"][2]["in"] = 128
    _tamper(src, bad, DESCRIPTION_KEY, np.array(json.dumps(desc)))
    with pytest.raises(ValueError, match=r"trunk\[2\]: linear in=128 but its input has width 256"):
        PortablePolicy.load(bad)

    _tamper(src, bad, DESCRIPTION_KEY, np.array("{not json"))
    with pytest.raises(ValueError, match="not valid JSON"):
        PortablePolicy.load(bad)

    with pytest.raises(ValueError, match=r"obs must have shape \[6\]"):
        PortablePolicy.load(src).act(np.zeros((2, 5)))


def test_portable_policy_runs_without_torch(tmp_path):
    """A fresh interpreter where `import torch` fails can import the module, load a file and act."""
    sac = _random_sac(1.5, seed=11)
    path = export_sac(sac, tmp_path / "edge.npz")
    obs = np.random.default_rng(4).normal(0.0, 3.0, size=(1000, 6)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from agent_node.portable_policy import PortablePolicy\n"
        "assert not any(m.split('.')[0] == 'torch' and sys.modules[m] is not None for m in sys.modules)\n"
        f"pol = PortablePolicy.load({str(path)!r})\n"
        f"np.save({str(tmp_path / 'act.npy')!r}, pol.act(np.load({str(tmp_path / 'obs.npy')!r})))\n"
        "print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    want = sac.act(obs, deterministic=True)[0]
    assert np.max(np.abs(np.load(tmp_path / "act.npy") - want)) < 1e-5
