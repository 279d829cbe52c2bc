"""The embedded backend: a local aiXplain-wire model server (Starlette on uvicorn) with offline models.

* ``embedded.ensure_running() -> (base_url, token)``: start it in this process on first use
  (127.0.0.1, random port, random token); ``embedded.stop()``.
* ``registry.register_model``: serve your own Python function as a model (``aix_jupyter.register_model``).
* ``app.create_app(catalog, token=...)``: the ASGI app; ``server.BackendServer``: uvicorn in a thread,
  behind ``guard`` (request-head deadline, connection cap, quiet logs); ``cli``: ``aix serve`` to run
  it standalone. Limits and what they defend against: README.md, "Threat model and limits".
* Built-in models (``models/``): ``local/sentiment-vader``, ``local/langid-langdetect``,
  ``local/keywords-yake``, ``local/smollm2-135m`` (streaming LLM, needs the ``llm`` extra), and the
  deterministic demo models ``local/countdown`` (slow, with progress) and ``local/typewriter`` (streams).

Importing this package imports nothing heavy; each model's library loads at its first run.
"""
