"""``StreamText``: append-only in the kernel, and its inline Markdown renderer run by Node (when present).

The view's JavaScript is checked in a real browser by tests/browser; here its ``renderMarkdown``
is run by Node on its own, for what a browser test would be slow to cover: escaping and each block.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import comm
import pytest

from aix_jupyter.widgets.stream_text import _ESM, StreamText


class RecordingComm(comm.DummyComm):
    sent: list[dict]

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        self.__dict__.setdefault("sent", []).append(data or {})


def test_append_sends_only_the_new_text_and_keeps_the_whole_value(monkeypatch):
    monkeypatch.setattr(comm, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))
    view = StreamText()
    sent = view.comm.sent
    sent.clear()
    view.show("Hello")
    view.show("Hello, wor")
    view.append("ld")
    assert view.value == "Hello, world"
    assert [m["content"] for m in sent] == [{"append": "Hello"}, {"append": ", wor"}, {"append": "ld"}]
    sent.clear()
    view.show("Goodbye")  # not a continuation: the whole value, as a trait update
    assert view.value == "Goodbye"
    assert sent == [{"method": "update", "state": {"value": "Goodbye"}, "buffer_paths": []}]
    sent.clear()
    view.markdown = True
    view.reset()
    assert view.value == "" and not view.markdown
    assert sent[-1]["state"] == {"value": "", "markdown": False}


MARKDOWN = """# Title
Some **bold**, *it* and `a<b`
line two

- one
- two

1. x
2. y

```
<code> & *x*
```
> quote
[link](https://x.org/a?b=1&c=2) [bad](javascript:alert(1)) <script>alert(1)</script>"""

EXPECTED = (
    "<h1>Title</h1><p>Some <strong>bold</strong>, <em>it</em> and <code>a&lt;b</code><br>line two</p>"
    "<ul><li>one</li><li>two</li></ul><ol><li>x</li><li>y</li></ol>"
    "<pre><code>&lt;code&gt; &amp; *x*</code></pre><blockquote>quote</blockquote>"
    '<p><a href="https://x.org/a?b=1&amp;c=2" target="_blank" rel="noopener">link</a> '
    "[bad](javascript:alert(1)) &lt;script&gt;alert(1)&lt;/script&gt;</p>"
)


def test_the_views_markdown_renderer_escapes_and_renders_each_block(tmp_path: Path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (the browser tests run the same code in Chromium)")
    (tmp_path / "view.mjs").write_text(_ESM)
    script = tmp_path / "run.mjs"
    script.write_text(
        'import { renderMarkdown } from "./view.mjs";\n'
        f"process.stdout.write(JSON.stringify(renderMarkdown({json.dumps(MARKDOWN)})));\n"
    )
    out = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == EXPECTED
