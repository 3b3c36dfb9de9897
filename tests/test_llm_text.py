"""Coordinator LLM client: extraction, contract checks, conversation budget, recording/replay, HTTP client."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import free_port

from scenarios.llm import (
    Conversation,
    LLMAuthError,
    LLMClient,
    LLMConfig,
    LLMUnavailable,
    Recorder,
    ReplayBackend,
    ReplayMiss,
    check_contract,
    extract_code,
    feedback_text,
    request_hash,
)
from scenarios.llm.conversation import TRUNCATION_MARKER

needs_openai = pytest.mark.skipif(importlib.util.find_spec("openai") is None, reason="openai package not installed")

# ---------------------------------------------------------------- extraction
REPLY_PY = "Here you go:\n```python\ndef plan(obs):\n    return 1\n```\nDone."


def test_extract_python_fence():
    assert extract_code(REPLY_PY) == "def plan(obs):\n    return 1\n"


def test_extract_bare_fence():
    assert extract_code("text\n```\nx = 1\n```\n") == "x = 1\n"


def test_extract_none():
    assert extract_code("no code here, just `inline` text") is None
    assert extract_code("") is None and extract_code(None) is None


def test_extract_prefers_python_among_several():
    reply = "```bash\nls\n```\nthen\n```python\na = 2\n```\nand\n```python\nb = 3\n```"
    assert extract_code(reply) == "a = 2\n"
    assert extract_code("```text\nfirst\n```\n```json\n{}\n```") == "first\n"


# ------------------------------------------------------------ contract checks
def test_contract_ok():
    r = check_contract("import math\ndef mask(obs, t, extra=None):\n    return obs\n", "mask", ["obs", "t"])
    assert r.ok and r.check is None


@pytest.mark.parametrize(
    "source,check",
    [
        (None, "no_code"),
        ("   \n", "no_code"),
        ("def mask(obs, t):\n    return (\n", "syntax"),
        ("def other(obs, t):\n    pass\n", "missing_function"),
        ("def mask(obs):\n    pass\n", "signature"),
        ("def mask(o, t):\n    pass\n", "signature"),
        ("def mask(obs, t, u):\n    pass\n", "signature"),
        ("def mask(obs, t, *, k):\n    pass\n", "signature"),
        ("async def mask(obs, t):\n    pass\n", "signature"),
    ],
)
def test_contract_failures(source, check):
    r = check_contract(source, "mask", ["obs", "t"])
    assert not r.ok and r.check == check
    assert r.message
    fb = feedback_text(r)
    assert f"'{check}'" in fb and "\n" not in fb


def test_contract_syntax_line_number_and_no_exec(tmp_path):
    flag = tmp_path / "ran"
    r = check_contract(f"open({str(flag)!r}, 'w')\ndef mask(obs, t):\n    pass\n", "mask", ["obs", "t"])
    assert r.ok and not flag.exists()  # parsed, never executed
    r = check_contract("x = 1\ny = (\n", "mask", ["obs"])
    assert r.check == "syntax" and r.line is not None and f"line {r.line}" in r.message


def test_contract_missing_function_nested_is_not_enough():
    r = check_contract("class A:\n    def mask(self, obs):\n        pass\n", "mask", ["obs"])
    assert r.check == "missing_function"


# --------------------------------------------------------------- conversation
def test_conversation_keeps_everything_under_budget():
    c = Conversation("sys", budget_tokens=1000)
    c.add_user("u1"), c.add_assistant("a1"), c.add_user("u2")
    assert [m["content"] for m in c.messages()] == ["sys", "u1", "a1", "u2"]


def test_conversation_drops_oldest_pairs_first_and_keeps_system():
    c = Conversation("S" * 400, budget_tokens=400)  # system ~104 tokens
    for i in range(10):
        c.add_user(f"{i}" * 200)  # ~54 tokens each
        c.add_assistant(f"{i}" * 200)
    msgs = c.messages()
    assert msgs[0] == {"role": "system", "content": "S" * 400}
    assert c.tokens() <= 400
    contents = [m["content"][0] for m in msgs[1:]]
    assert contents == sorted(contents) and contents[-1] == "9"  # newest kept, contiguous, oldest dropped
    assert len(contents) % 2 == 0  # whole pairs
    assert [m["role"] for m in msgs[1:3]] == ["user", "assistant"]
    assert len(msgs) < 21


def test_conversation_truncates_oversized_last_user_message_from_front():
    c = Conversation("sys", budget_tokens=100)
    c.add_user("old"), c.add_assistant("reply")
    c.add_user("A" * 2000 + "THE END")
    msgs = c.messages()
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"].startswith(TRUNCATION_MARKER) and msgs[1]["content"].endswith("THE END")
    assert c.tokens() <= 100


def test_conversation_custom_counter():
    c = Conversation("s", budget_tokens=20, count_tokens=lambda s: len(s.split()))
    for i in range(5):
        c.add_user("a b c"), c.add_assistant("d e f")
    n = len(c.messages())  # each message costs 3 + 4 overhead; system 1 + 4 = 5 -> 15 left -> 1 pair
    assert n == 3


# ------------------------------------------------------------ recorder/replay
MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "write code"}]


def test_request_hash_stable_and_sensitive():
    p = {"temperature": 0.0, "max_tokens": 10}
    h = request_hash(MSGS, "m", p)
    assert h == request_hash([dict(m) for m in MSGS], "m", {"max_tokens": 10, "temperature": 0.0})
    assert len(h) == 64
    assert h != request_hash(MSGS, "m", {"temperature": 0.5, "max_tokens": 10})
    assert h != request_hash(MSGS, "m2", p)
    assert h != request_hash(MSGS[:1], "m", p)


def test_recorder_replay_round_trip(tmp_path):
    path = tmp_path / "run" / "llm.jsonl"
    rec = Recorder(path)
    p = {"temperature": 0.0, "max_tokens": 10}
    rec.record(messages=MSGS, model="m", params=p, reply="R1", latency_s=0.5, prompt_tokens=7, completion_tokens=3)
    rec.record(messages=MSGS, model="m", params={"temperature": 1.0}, reply=None, latency_s=0.1, error="boom")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 2
    assert set(lines[0]) >= {
        "request_hash",
        "messages",
        "model",
        "params",
        "reply",
        "latency_s",
        "prompt_tokens",
        "completion_tokens",
        "error",
        "time",
    }
    rb = ReplayBackend(path)
    e = rb.lookup(MSGS, "m", p)
    assert (e["reply"], e["prompt_tokens"], e["completion_tokens"]) == ("R1", 7, 3)
    with pytest.raises(KeyError) as ei:  # failed exchanges are not replayable
        rb.lookup(MSGS, "m", {"temperature": 1.0})
    assert request_hash(MSGS, "m", {"temperature": 1.0}) in str(ei.value)
    assert isinstance(ei.value, ReplayMiss)


# -------------------------------------------------------------------- config
def test_config_env_resolution():
    env = {"OPENAI_BASE_URL": "http://env/v1", "OPENAI_API_KEY": "k-env", "OPENAI_MODEL": "env-model"}
    c = LLMConfig.from_env(env, backend="openai", model="explicit")
    assert (c.base_url, c.api_key, c.model) == ("http://env/v1", "k-env", "explicit")
    assert LLMConfig.from_env(env, backend="openai").model == "env-model"  # OPENAI_MODEL is read
    assert LLMConfig(backend="openai").with_env(env).model == "env-model"  # a parsed [llm] table, as the client does
    assert LLMConfig.from_env(env, backend="local").resolved_base_url() == "http://127.0.0.1:8765/v1"  # not redirected
    local = LLMConfig.from_env({}, backend="local")
    assert local.resolved_base_url() == "http://127.0.0.1:8765/v1" and local.resolved_api_key()
    assert local.context_tokens == 10_000
    with pytest.raises(ValueError):
        LLMConfig(backend="replay")
    with pytest.raises(ValueError):
        LLMConfig(bogus=1)


# ------------------------------------------------------------------- client
@needs_openai
def test_client_unreachable_raises_quickly_and_records(tmp_path):
    port = free_port()  # nothing listens there
    cfg = LLMConfig(
        backend="openai",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="k",
        timeout_s=1.0,
        max_retries=1,
        backoff_s=0.01,
    )
    rec = Recorder(tmp_path / "llm.jsonl")
    client = LLMClient(cfg, recorder=rec)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailable) as ei:
        client.complete(MSGS)
    assert time.monotonic() - t0 < 3
    assert f"127.0.0.1:{port}" in str(ei.value) and "2 attempt" in str(ei.value)
    line = json.loads((tmp_path / "llm.jsonl").read_text().splitlines()[0])
    assert line["reply"] is None and "LLMUnavailable" in line["error"] and line["attempts"] == 2
    m = client.metrics()
    assert m["calls"] == 1 and m["failures"] == 1 and m["retries"] == 1


class _FakeServer:
    """A real stdlib HTTP server speaking the chat-completions shape; `script` lists statuses to answer in turn."""

    def __init__(self, script: list[int], reply: str = "```python\ndef plan(obs):\n    return 0\n```"):
        self.script = list(script)
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status = owner.script.pop(0) if owner.script else 200
                if status == 0:  # 0: answer too late (client timeout), then 200
                    time.sleep(0.6)
                    status = 200
                if status == 200:
                    payload = {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}
                        ],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
                    }
                else:
                    payload = {"error": {"message": f"status {status}", "type": "x", "code": None}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _cfg(url, **kw):
    return LLMConfig(
        **{
            "backend": "openai",
            "base_url": url,
            "api_key": "sk-test",
            "model": "m",
            "timeout_s": 5.0,
            "max_retries": 2,
            "backoff_s": 0.01,
            **kw,
        }
    )


@needs_openai
def test_an_openai_table_without_a_model_sends_openai_model_from_the_environment(monkeypatch):
    """A parsed [llm] table (backend "openai", no model, no address) takes them from OPENAI_* in the client."""
    with _FakeServer([200]) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        monkeypatch.setenv("OPENAI_MODEL", "env-model")
        LLMClient(LLMConfig.model_validate({"backend": "openai", "max_retries": 0})).complete(MSGS)
    req = srv.requests[0]
    assert req["body"]["model"] == "env-model" and req["auth"] == "Bearer sk-env"


@needs_openai
def test_client_real_http_then_replay(tmp_path):
    rec_path = tmp_path / "llm.jsonl"
    with _FakeServer([200]) as srv:
        client = LLMClient(_cfg(srv.url), recorder=Recorder(rec_path))
        out = client.complete(MSGS)
    assert extract_code(out.text) == "def plan(obs):\n    return 0\n"
    assert (out.prompt_tokens, out.completion_tokens, out.model) == (11, 5, "m")
    req = srv.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["messages"] == MSGS and req["body"]["temperature"] == 0.0
    m = client.metrics()
    assert (m["calls"], m["tokens_in"], m["tokens_out"], m["failures"]) == (1, 11, 5, 0)
    # replay: same request answered from the file, no server running
    rep = LLMClient(LLMConfig(backend="replay", replay_file=str(rec_path), model="m"))
    again = rep.complete(MSGS)
    assert (again.text, again.prompt_tokens, again.completion_tokens) == (out.text, 11, 5)
    with pytest.raises(ReplayMiss):
        rep.complete(MSGS + [{"role": "user", "content": "different"}])


@needs_openai
def test_client_401_raises_auth_error_without_retry(tmp_path):
    with _FakeServer([401, 401, 401]) as srv:
        client = LLMClient(_cfg(srv.url), recorder=Recorder(tmp_path / "llm.jsonl"))
        with pytest.raises(LLMAuthError) as ei:
            client.complete(MSGS)
    assert "401" in str(ei.value) and srv.url in str(ei.value)
    assert len(srv.requests) == 1
    assert "LLMAuthError" in json.loads((tmp_path / "llm.jsonl").read_text())["error"]


@needs_openai
def test_client_retries_503_then_succeeds():
    sleeps = []
    with _FakeServer([503, 503, 200]) as srv:
        client = LLMClient(_cfg(srv.url), sleep=sleeps.append)
        out = client.complete(MSGS)
    assert "def plan" in out.text and len(srv.requests) == 3
    assert sleeps == [0.01, 0.02]  # exponential backoff
    assert client.metrics()["retries"] == 2


@needs_openai
def test_client_503_exhausts_retries():
    with _FakeServer([503] * 5) as srv:
        client = LLMClient(_cfg(srv.url, max_retries=1), sleep=lambda s: None)
        with pytest.raises(LLMUnavailable) as ei:
            client.complete(MSGS)
    assert "503" in str(ei.value) and len(srv.requests) == 2


@needs_openai
def test_client_timeout_is_unavailable():
    with _FakeServer([0]) as srv:
        client = LLMClient(_cfg(srv.url, timeout_s=0.2, max_retries=0))
        t0 = time.monotonic()
        with pytest.raises(LLMUnavailable) as ei:
            client.complete(MSGS)
    assert "timed out" in str(ei.value) and time.monotonic() - t0 < 1.0
