"""Sandbox for LLM-written code: every failure mode is typed, valid code works, workers get replaced."""
from __future__ import annotations

import math
import os
import signal
import time

import numpy as np
import pytest

from agent_node.sandbox import PersistentWorker, Sandbox, SandboxLimits

FAST = SandboxLimits(cpu_s=1, wall_s=5, memory_mb=128)


def run(source: str, *args, limits: SandboxLimits = FAST, expect=None, func: str = "f"):
    return Sandbox(limits).run_once(source, func, list(args), expect=expect)


def test_valid_function_returns_value():
    res = run("def f(a, b):\n    return {'sum': a + b, 'items': [a, b]}\n", 2, 3)
    assert res.ok and res.error is None
    assert res.value == {"sum": 5, "items": [2, 3]}


def test_numpy_array_in_and_out():
    src = "import numpy as np\ndef f(x):\n    return np.sqrt(x).astype(np.float32)\n"
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    res = run(src, x, expect={"shape": (3, 4), "dtype": "float32"})
    assert res.ok, res.message
    assert isinstance(res.value, np.ndarray) and res.value.dtype == np.float32
    np.testing.assert_allclose(res.value, np.sqrt(x))


@pytest.mark.parametrize("source,error", [
    ("def f(:\n    pass\n", "syntax"),
    ("def f():\n    return 1 / 0\n", "exception"),
    ("def f():\n    return bytearray(10**10)\n", "memory"),                                   # one huge block
    ("def f():\n    xs = []\n    while True:\n        xs.append(' ' * 10**6)\n", "memory"),   # gradual bomb
    ("import socket\ndef f():\n    return 1\n", "forbidden_import"),
    ("import os\ndef f():\n    return 1\n", "forbidden_import"),
    ("import subprocess\ndef f():\n    return 1\n", "forbidden_import"),
    ("from numpy import ctypeslib\ndef f():\n    return 1\n", "forbidden_import"),
    ("def f():\n    open('/tmp/netmarl_sandbox_pwned', 'w').write('x')\n", "forbidden_operation"),
    ("def f():\n    try:\n        open('/tmp/netmarl_sandbox_pwned', 'a')\n    except Exception:\n"
     "        return 'swallowed'\n", "forbidden_operation"),                                 # caught, still flagged
    ("def g():\n    return 1\n", "missing_function"),
    ("def f():\n    return lambda: 1\n", "bad_output"),                                        # not serialisable
])
def test_failure_modes_are_typed(source, error):
    res = run(source)
    assert not res.ok
    assert res.error == error, (res.error, res.message, res.traceback)
    assert res.message
    assert not os.path.exists("/tmp/netmarl_sandbox_pwned")


def test_exception_carries_traceback_with_source_line():
    res = run("def f():\n    x = {}\n    return x['missing']\n")
    assert res.error == "exception"
    assert "KeyError" in res.traceback and "x['missing']" in res.traceback


def test_os_system_refused_even_when_os_is_allowed():
    limits = FAST.model_copy(update={"allowed_modules": FAST.allowed_modules + ("os",)})
    res = run("import os\ndef f():\n    return os.system('touch /tmp/netmarl_sandbox_pwned')\n", limits=limits)
    assert res.error == "forbidden_operation" and "os.system" in res.message
    assert not os.path.exists("/tmp/netmarl_sandbox_pwned")


def test_sockets_refused_even_when_socket_is_allowed():
    limits = FAST.model_copy(update={"allowed_modules": FAST.allowed_modules + ("socket",)})
    src = "import socket\ndef f():\n    s = socket.socket()\n    s.connect(('1.1.1.1', 53))\n"
    res = run(src, limits=limits)
    assert res.error == "forbidden_operation"


def test_infinite_loop_stopped_by_cpu_limit():
    res = run("def f():\n    while True:\n        pass\n", limits=FAST.model_copy(update={"wall_s": 10}))
    assert res.error == "timeout" and "CPU" in res.message
    assert res.seconds < 4


def test_infinite_loop_stopped_by_wall_clock():
    res = run("def f():\n    while True:\n        pass\n", limits=FAST.model_copy(update={"cpu_s": 30, "wall_s": 0.5}))
    assert res.error == "timeout" and "wall-clock" in res.message
    assert res.seconds < 2


def test_wrong_output_shape_and_dtype():
    src = "import numpy as np\ndef f(n):\n    return np.zeros(n, dtype=np.int64)\n"
    assert run(src, 3, expect={"shape": (4,)}).error == "bad_output"
    assert run(src, 4, expect={"shape": (4,), "dtype": "bool"}).error == "bad_output"
    assert run(src, 4, expect={"shape": (None,), "dtype": "int64"}).ok


def test_parent_never_runs_generated_code():
    src = "import math\nmath.NETMARL_SANDBOX_SIDE_EFFECT = 42\ndef f():\n    return math.NETMARL_SANDBOX_SIDE_EFFECT\n"
    res = run(src)
    assert res.ok and res.value == 42                      # the side effect happened in the child ...
    assert not hasattr(math, "NETMARL_SANDBOX_SIDE_EFFECT")  # ... and not here


def test_persistent_worker_10k_calls_and_kill_replace():
    src = "import numpy as np\ndef mask(obs):\n    return obs > 0\n"
    rng = np.random.default_rng(0)
    with PersistentWorker(src, "mask", FAST, expect={"shape": (10,), "dtype": "bool"}) as w:
        assert w.load_result.ok, w.load_result.message
        for _ in range(10_000):
            obs = rng.standard_normal(10)
            res = w.call(obs)
            assert res.ok and np.array_equal(res.value, obs > 0)
        old = w.pid
        os.kill(old, signal.SIGKILL)
        time.sleep(0.05)
        obs = rng.standard_normal(10)
        res = w.call(obs)
        assert res.ok and np.array_equal(res.value, obs > 0)
        assert w.replacements == 1 and w.pid != old


def test_persistent_worker_timeout_is_replaced_and_keeps_serving():
    src = "def f(x):\n    while x < 0:\n        pass\n    return x + 1\n"
    with PersistentWorker(src, "f", FAST.model_copy(update={"cpu_s": 30, "wall_s": 0.5})) as w:
        assert w.call(1).value == 2
        res = w.call(-1)
        assert res.error == "timeout"
        assert w.replacements == 1
        assert [w.call(i).value for i in range(5)] == [1, 2, 3, 4, 5]
        assert w.call(-1).error == "timeout" and w.call(7).value == 8
        assert w.replacements == 2


def test_persistent_worker_with_invalid_source_reports_load_failure():
    w = PersistentWorker("import socket\ndef f():\n    return 1\n", "f", FAST)
    assert w.load_result.error == "forbidden_import"
    assert w.call().error == "forbidden_import" and w.replacements == 0
    w.close()


def test_network_namespace_recorded():
    res = run("def f():\n    return 1\n")
    from agent_node.sandbox.runner import unshare_works
    assert res.network_isolated == unshare_works()
    off = run("def f():\n    return 1\n", limits=FAST.model_copy(update={"network_namespace": "off"}))
    assert off.ok and off.network_isolated is False
