"""The client core: the aiXplain SDK's Model API over the aiXplain wire (httpx + pydantic 2).

Layout (nothing here imports Jupyter or the backend's code; httpx and pydantic load on first use):

    config      environment read at use time; ``resolve_endpoints``, the one seam deciding where
                requests go (explicit URL, platform with a key, else the embedded backend)
    enums, errors, events, parameters   the shared contract types
    response    ModelResponse                 streaming   SSE decoder, ModelResponseStreamer
    protocol    pure payload building and reply mapping
    polling     the sans-IO poll schedule (and why its cap is 5 s)
    flows       each operation once, as a generator of I/O steps, for both sync and async
    transport   httpx, deadlines, retries, where the API key may go; the sync/async I/O shells
    model       Model (sync methods and their ``a``-prefixed async twins)
    factory     ModelFactory.get / list (+ aget / alist)
    batch       Model.map / amap: one scheduler over the run flows (bounded, adaptive concurrency,
                timeout, cancel, resume); BatchResult, BatchEvent, BatchInterrupted
    compare     compare / acompare: several models on the same inputs; Comparison
    finetune    FinetuneStatus
"""
