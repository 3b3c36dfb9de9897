"""The offline default LLM, for real: the packaged model served by llama.cpp on loopback, its code run in the
sandbox."""

from __future__ import annotations

import json

import pytest

from scenarios.llm import LLMClient, LLMConfig, Recorder, check_contract, extract_code
from scenarios.llm.local_server import LocalServer, LocalServerError, model_path
from scenarios.sandbox import Sandbox, SandboxLimits

PROMPT = [
    {"role": "system", "content": "You write Python code."},
    {
        "role": "user",
        "content": "Write a Python function add(a, b) that returns the sum of a and b. "
        "Answer with one ```python code block.",
    },
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalServer(log_path=tmp_path_factory.mktemp("llm") / "server.log") as srv:
        yield srv


def test_reply_code_extracted_checked_and_run_in_the_sandbox(server, tmp_path):
    cfg = LLMConfig(backend="local", base_url=server.base_url, model="smollm2", max_tokens=200, timeout_s=120)
    client = LLMClient(cfg, recorder=Recorder(tmp_path / "llm.jsonl"))
    reply = client.complete(PROMPT)
    assert reply.text and reply.completion_tokens > 0 and reply.prompt_tokens > 0
    code = extract_code(reply.text)
    contract = check_contract(code or "", "add", ["a", "b"])
    if not contract.ok:  # the mechanics hold whatever the model wrote: a typed failure for the feedback prompt
        assert contract.check in ("no_code", "syntax", "missing_function", "signature")
        return
    result = Sandbox(SandboxLimits()).run_once(code, "add", (2, 3))
    assert result.ok or result.error  # a value or a typed failure, never an exception here
    if result.ok:
        assert result.value == 5
    line = json.loads((tmp_path / "llm.jsonl").read_text().splitlines()[0])
    assert line["reply"] == reply.text and line["completion_tokens"] == reply.completion_tokens


def test_recorded_run_replays_identically_without_the_server(server, tmp_path):
    path = tmp_path / "llm.jsonl"
    live = LLMClient(
        LLMConfig(backend="local", base_url=server.base_url, model="smollm2", max_tokens=60), recorder=Recorder(path)
    )
    first = [live.complete(PROMPT).text, live.complete([*PROMPT, {"role": "user", "content": "Now subtract."}]).text]
    replay = LLMClient(LLMConfig(backend="replay", replay_file=str(path), model="smollm2", max_tokens=60))
    again = [
        replay.complete(PROMPT).text,
        replay.complete([*PROMPT, {"role": "user", "content": "Now subtract."}]).text,
    ]
    assert again == first


def test_missing_model_is_a_clear_error():
    with pytest.raises(LocalServerError, match="unknown local model"):
        model_path("gpt-9")


def test_service_starts_the_local_default_records_and_reports_rounds(tmp_path):
    """No endpoint configured: the service starts the packaged model itself; a round of attempts lands in
    llm.jsonl and in one metrics record with extraction and execution rates, and stops the server."""
    from scenarios.llm import Conversation
    from scenarios.llm.service import LLMService

    records = []
    cfg = LLMConfig(backend="local", max_tokens=200, timeout_s=120)
    with LLMService(cfg, tmp_path, send_metrics=lambda kind, values: records.append((kind, values))) as svc:
        assert svc.server is not None and svc.server.ready()
        attempts = []
        for _ in range(2):
            conv = Conversation(PROMPT[0]["content"], budget_tokens=10_000)
            conv.add_user(PROMPT[1]["content"])
            attempts.append(svc.attempt(conv, "add", ["a", "b"], (2, 3)))
        values = svc.end_round(attempts)
        server = svc.server
    assert not server.ready()  # stopped with the service
    assert records == [("llm_round", values)] and values["calls"] == 2 and values["attempts"] == 2
    assert 0 <= values["execution_rate"] <= values["contract_rate"] <= values["extraction_rate"] <= 1
    assert len((tmp_path / "llm.jsonl").read_text().splitlines()) == 2
    for a in attempts:
        assert a.executed or a.feedback()  # a failure always has words for the next prompt


def test_the_server_dies_with_its_parent_even_mid_generation(tmp_path):
    """A coordinator killed outright (SIGKILL) while its local server generates leaves no server behind: the
    server gets SIGKILL from the kernel (on SIGTERM it would first finish the generation for a client that is
    gone)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, wait_for

    script = (
        "import json, sys, threading, urllib.request\n"
        "from scenarios.llm.local_server import LocalServer\n"
        "srv = LocalServer().start()\n"
        "body = json.dumps({'model': srv.model, 'max_tokens': 2000, 'messages': [{'role': 'user', 'content': "
        "'Count from 1 to 1000, one number a line.'}]}).encode()\n"
        "req = urllib.request.Request(srv.base_url + '/chat/completions', body, {'Content-Type': 'application/json'})\n"
        "threading.Thread(target=lambda: urllib.request.urlopen(req, timeout=600), daemon=True).start()\n"
        "print(srv.process.pid, flush=True)\n"
        "threading.Event().wait()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        time.sleep(2)  # the generation is under way
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)

        def gone():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for init to reap it is gone too
                return fh.read().split(")")[-1].split()[0] == "Z"

        wait_for(gone, 10, "the server to die with its parent")
    finally:
        parent.kill()
