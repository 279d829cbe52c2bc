"""The client core: the aiXplain SDK's Model API over the aiXplain wire (httpx + pydantic 2).

Layout, bottom up; every import points down or sideways, never in a circle (tests/test_layers.py).
Nothing here imports Jupyter or the backend's code; httpx and pydantic load on first use.

    base        config (environment read at use time; ``resolve_endpoints``, the one seam deciding
                where requests go), enums, errors, parameters, response (ModelResponse), finetune,
                hooks (what the package plugs in: the default backend; the late bindings through
                which ModelResponse.save and LLM.chat reach media and conversation, above them)
    sans I/O    wire            Call, Opened and how a request ends without a reply
                protocol        pure payload building and reply mapping
                polling         the poll schedule (and why its cap is 5 s)
                flows           each operation once, as a generator of I/O steps (their ops, and the
                                two loops that drive them), for both sync and async
                retries         the retry policy of one request, as a flow
                streaming       SSE decoder, ModelResponseStreamer
                events, marks   RunEvent and the session's outcomes; what the cache/cassette seam marks
                batch_schedule  a batch's back-pressure (Limiter, the run request's guard)
                batch_result    BatchEvent, BatchResult, BatchInterrupted
                mediatypes      media inputs (paths, bytes, media objects) and what first bytes say
                structured      an LLM's response_format: checked and parsed answers
    I/O         transport       httpx requests, deadlines, size caps, where the API key may go
                sync_transport, async_transport   the two I/O drivers (workers: their threads)
    stores      recall (the cache/cassette seam), requestkey, cache, cassette, secrets
    top         plans           Plan, and the sync and async public methods made from one
                model           Model (sync methods and their ``a``-prefixed async twins)
                factory         ModelFactory.get / list (+ aget / alist)
                batch           Model.map / amap: one scheduler over the run flows (bounded, adaptive
                                concurrency, timeout, cancel, resume)
                compare         compare / acompare: several models on the same inputs; Comparison
                llm             LLM (the SDK's text-generation model class); conversation: Conversation
                media           download / adownload: a model's output file
"""
