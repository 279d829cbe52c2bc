"""``StreamText``: a text view that grows by appended pieces, then shows its text as Markdown.

A stock ipywidgets text view (``HTML``, ``Textarea``, ``Output``) is repainted by re-sending its whole
value, so a stream shown through one costs bytes that grow with the square of its length. This view
(an ``anywidget`` with its JavaScript inline: nothing is fetched) receives only what is new:

* ``append(text)`` sends ``{"append": text}`` as a custom comm message. The browser adds it to the
  model's ``value`` locally (once per model, in ``initialize``), so every view of the model, and a
  view created later (an output re-rendered, the notebook's saved widget state), shows the whole text.
  The kernel's copy of ``value`` is updated without a message, so a page that reconnects asks the
  kernel for the full text and gets it.
* ``markdown = True`` (a one-byte trait change) turns the text into rendered Markdown in the browser:
  the final text is not sent a second time. The renderer is small and safe (everything is escaped,
  links only http(s)): paragraphs, line breaks kept, headings, lists, emphasis, code spans and fenced
  code blocks, block quotes and links.
* ``reset()`` empties it (a normal trait change).
* ``sync()`` sends the whole value as a trait update: for a kernel driven without a live frontend,
  whose executor (nbclient) saves the widget state it saw in trait updates, not custom messages.
"""

from __future__ import annotations

import threading

import anywidget
import traitlets

_ESM = r"""
const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
  .replace(/"/g, "&quot;");

function inline(s) {
  const codes = [];
  s = s.replace(/`([^`\n]+)`/g, (_, c) => {
    codes.push(c);
    return "\u0000" + (codes.length - 1) + "\u0000";
  });
  s = esc(s)
    .replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, '<a href="$2" target="_blank" rel="noopener">$1</a>')
    .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
    .replace(/__([^_\n]+)__/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>")
    .replace(/(^|[^_\w])_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>");
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => "<code>" + esc(codes[+i]) + "</code>");
}

const FENCE = /^\s*(```|~~~)/;

export function renderMarkdown(text) {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let para = [], list = null, fence = false, code = [];
  const flush = () => {
    if (para.length) out.push("<p>" + para.map(inline).join("<br>") + "</p>");
    para = [];
    if (list) {
      const items = list.items.map((i) => "<li>" + inline(i) + "</li>").join("");
      out.push(`<${list.tag}>${items}</${list.tag}>`);
    }
    list = null;
  };
  const block = (html) => { flush(); out.push(html); };
  const codeBlock = () => "<pre><code>" + esc(code.join("\n")) + "</code></pre>";
  for (const line of lines) {
    if (fence) {
      if (FENCE.test(line)) { out.push(codeBlock()); fence = false; code = []; }
      else code.push(line);
      continue;
    }
    let m;
    if (FENCE.test(line)) { flush(); fence = true; continue; }
    if (!line.trim()) { flush(); continue; }
    if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      block(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`);
      continue;
    }
    if ((m = /^\s*>\s?(.*)$/.exec(line))) {
      block("<blockquote>" + inline(m[1]) + "</blockquote>");
      continue;
    }
    if ((m = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(line))) {
      const tag = /\d/.test(m[1]) ? "ol" : "ul";
      if (para.length || (list && list.tag !== tag)) flush();
      if (!list) list = { tag, items: [] };
      list.items.push(m[2]);
      continue;
    }
    if (list) flush();
    para.push(line);
  }
  if (fence) out.push(codeBlock());
  flush();
  return out.join("");
}

function initialize({ model }) {
  // once per model, however many views it has: the text grows here, the views only draw it
  const onMessage = (msg) => {
    if (msg && typeof msg.append === "string") model.set("value", (model.get("value") || "") + msg.append);
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}

function render({ model, el }) {
  el.classList.add("aix-stream-text");
  const pre = document.createElement("pre");
  const md = document.createElement("div");
  md.className = "aix-markdown jp-RenderedMarkdown jp-RenderedHTMLCommon";
  el.append(pre, md);
  let drawn = "";
  const paint = () => {
    const text = model.get("value") || "";
    if (model.get("markdown")) {
      pre.style.display = "none"; md.style.display = "";
      md.innerHTML = renderMarkdown(text);
      drawn = null;
    } else {
      md.style.display = "none"; pre.style.display = "";
      if (drawn !== null && text.startsWith(drawn)) pre.append(text.slice(drawn.length));
      else pre.textContent = text;
      drawn = text;
    }
  };
  model.on("change:value", paint);
  model.on("change:markdown", paint);
  paint();
  return () => { model.off("change:value", paint); model.off("change:markdown", paint); };
}

export default { initialize, render };
"""

_CSS = """
.aix-stream-text pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0;
  font-family: var(--jp-code-font-family, monospace); font-size: var(--jp-code-font-size, 13px); }
.aix-stream-text .aix-markdown { max-height: 32em; overflow-y: auto; }
"""


class StreamText(anywidget.AnyWidget):
    """A text view fed by ``append()`` (only the new text goes to the browser); ``markdown`` renders it."""

    _esm = _ESM
    _css = _CSS
    value = traitlets.Unicode("").tag(sync=True)
    markdown = traitlets.Bool(False).tag(sync=True)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._append_lock = threading.Lock()

    def append(self, text: str) -> None:
        """Add ``text`` at the end: one small message with just ``text``."""
        if not text:
            return
        with self._append_lock:
            new = self.value + text
            with self._lock_property(value=new):  # the kernel's copy follows without a message
                self.value = new
            self.send({"append": text})

    def show(self, text: str) -> None:
        """Make the view hold ``text``: appends what is new when ``text`` extends it, else replaces it."""
        current = self.value
        if text.startswith(current):
            self.append(text[len(current) :])
        else:
            with self._append_lock:
                self.value = text

    def reset(self) -> None:
        """Empty the view and show plain text again."""
        with self._append_lock, self.hold_sync():
            self.value = ""
            self.markdown = False

    def sync(self) -> None:
        """Send the whole value as a trait update (for executors that save widget state)."""
        self.send_state("value")


__all__ = ["StreamText"]
