"""The figure-eight's score when every CAV commands one constant acceleration (no learning, no agents): the
all-IDM reference line is what "always accelerate" scores, since SUMO's safe-speed fail-safe then drives every CAV.

    python benchmarks/figure8_constant_policy.py 3 1 0      # accelerations in m/s^2; the first test episode
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scenarios.cav.env import Figure8CavEnv  # noqa: E402
from scenarios.step_driver import TEST_SEED  # noqa: E402

TEST_EPISODE = TEST_SEED + 10  # the world's first test episode (after 10 training episodes) of a seed


def score(net_dir: Path, accel: float, seed: int, steps: int) -> tuple[float, bool]:
    """The episode's score (sum of the shared reward / steps, as the world computes it) and whether it collided."""
    env = Figure8CavEnv(net_dir, seed=seed, horizon=steps)
    env.reset(TEST_EPISODE)
    total, collided = 0.0, False
    try:
        for _ in range(steps):
            env.step({a: accel for a in env.active()})
            total += env.reward()
            collided |= env.collided()
            if collided:
                break
    finally:
        env.close()
    return total / steps, collided


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("accels", nargs="+", type=float)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=1500)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as net:
        for a in args.accels:
            s, collided = score(Path(net), a, args.seed, args.steps)
            print(f"constant {a:+.2f} m/s^2: score {s:.6f}{' (collision)' if collided else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
