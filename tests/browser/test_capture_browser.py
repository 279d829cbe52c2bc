"""Record, Camera and drag-and-drop in ModelWidget, in a real JupyterLab 4 and Notebook 7 in Chromium,
against the embedded backend's offline media models.

Chromium's fake devices stand in for the hardware: the microphone plays ``tests/data/speech_fox.wav``
("The quick brown fox jumps over the lazy dog."), the camera shows ``tests/data/text_line.png``
(turned into a Y4M video at test time, ``fake_media.write_y4m``). One notebook per frontend, one step
per test: Record → Use → Run on Whisper gives the spoken words; Camera → Snap → Use → Run on the OCR
model gives the printed line; a PNG dropped on the widget becomes the value, and one over the
widget's limit is refused in the browser with one line and nothing sent; Piper's spoken answer plays
in an ``<audio>`` player whose duration is over zero. Screenshots go to the test-artifacts folder:
``browser-capture-*.png`` (Notebook 7's ``browser-notebook7-capture-*.png``).

Skipped without the media models' packages (``make install`` installs them); in CI (``CI=true``)
that fails instead, as every browser test does without its browser.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import CHROMIUM_ARGS, _unavailable
from tests.browser.fake_media import write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

DATA = Path(__file__).resolve().parents[1] / "data"
SPEECH, PICTURE = DATA / "speech_fox.wav", DATA / "text_line.png"
WORDS = "the quick brown fox jumps over the lazy dog"

CELLS = [
    'from aix_jupyter import ModelWidget\nasr = ModelWidget("local/whisper-tiny-en")\nasr',
    'ocr = ModelWidget("local/ocr-rapidocr")\nocr',
    'tts = ModelWidget("local/piper-joe")\ntts.set(text="The quick brown fox.")\ntts',
    'small = ModelWidget("local/ocr-rapidocr", max_media_mb=0.001)\nsmall',  # a 1 KB limit
    'short = ModelWidget("local/whisper-tiny-en", max_media_mb=0.05)\nshort',  # 51.2 KB: 1.6 s of WAV
]


@pytest.fixture(scope="module")
def media_models() -> None:
    from aix_jupyter.backend.models import ocr, piper, whisper

    missing = [engine.INSTALL_HINT for engine in (whisper, ocr, piper) if not engine.available()]
    if missing:
        _unavailable("media models missing: " + "; ".join(missing))


@pytest.fixture(scope="module")
def media_browser(media_models: None, chromium_path: str, tmp_path_factory: pytest.TempPathFactory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    camera = write_y4m(PICTURE, tmp_path_factory.mktemp("camera") / "text_line.y4m")
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={SPEECH}",
        f"--use-file-for-fake-video-capture={camera}",
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=args, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """The open notebook and its widgets; ``step`` saves a screenshot when a step fails."""

    def __init__(self, page: Any, lab: Any, artifacts: Path) -> None:
        self.page, self.lab, self.artifacts = page, lab, artifacts
        self.widgets = page.locator(".aix-model-widget")

    def shot(self, name: str) -> str:
        return str(self.artifacts / self.lab.artifact(f"browser-capture-{name}.png"))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.page.screenshot(path=self.shot(f"failure-{name}"), full_page=True)
            raise


@pytest.fixture(scope="module")
def notebook(media_models: None, media_browser, lab, artifacts_dir: Path) -> Iterator[Page]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (lab.root / "capture.ipynb").write_text(nbformat.writes(nb))
    page = media_browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(90_000)
    opened = Page(page, lab, artifacts_dir)
    try:
        with opened.step("open"):
            page.goto(lab.notebook_url("capture.ipynb"))
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const s = w && w.sessionContext && w.sessionContext.session;"
                " return !!(s && s.kernel) && s.kernel.status === 'idle'; }"
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            opened.widgets.nth(len(CELLS) - 1).locator(".aix-capture").wait_for(timeout=120_000)
        yield opened
    finally:
        page.close()


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def _wait_finished(page: Any, widget: Any) -> None:
    """Wait for the run to end; it must have finished (else the failure is said)."""
    label = widget.locator(".aix-progress-label")
    page.wait_for_function(
        "el => /^(finished|failed|cancelled)/.test(el.textContent)",
        arg=label.element_handle(),
        timeout=120_000,
    )
    assert label.inner_text().startswith("finished"), (
        label.inner_text(),
        widget.locator(".aix-meta").inner_text(),
    )


def _wait_result(page: Any, widget: Any) -> str:
    """The result's text once the run finished."""
    _wait_finished(page, widget)
    result = widget.locator(".aix-result")
    page.wait_for_function("el => el.innerText.trim().length > 0", arg=result.element_handle())
    return result.inner_text()


def _use_and_wait_for_the_path(page: Any, widget: Any, field: str, name: str) -> Path:
    """Click Use: the clip goes to the kernel, whose temporary file's path fills the field."""
    widget.locator(".aix-capture-use").click()
    path_field = widget.locator(f".aix-param-{field} input[type=text]")
    page.wait_for_function(
        "([el, name]) => el.value.endsWith('/' + name)", arg=[path_field.element_handle(), name]
    )
    assert widget.locator(".aix-capture-status").inner_text().startswith(f"sent {name} (")
    return Path(path_field.input_value())


def test_record_then_run_transcribes_the_spoken_words(notebook: Page) -> None:
    """Record (the level meter moves), Stop, the clip plays in a player, Use, Run: Whisper's words."""
    page, asr = notebook.page, notebook.widgets.nth(0)
    with notebook.step("record"):
        asr.scroll_into_view_if_needed()
        run = asr.locator("button.aix-run")
        assert run.is_disabled()  # the audio is required and not there yet
        record = asr.locator(".aix-capture-record")
        record.click()
        meter = asr.locator(".aix-capture-meter")
        page.wait_for_function("el => parseFloat(el.dataset.peak || '0') > 0.01", arg=meter.element_handle())
        level = asr.locator(".aix-capture-level").evaluate("el => el.style.width")
        asr.screenshot(path=notebook.shot("recording"))
        time.sleep(3.5)  # the fake microphone plays the 2.8 s sentence (then loops)
        assert record.inner_text() == "Stop"
        record.click()
        clip = asr.locator("audio.aix-capture-clip")
        clip.wait_for()
        page.wait_for_function("el => el.duration > 3 && isFinite(el.duration)", arg=clip.element_handle())
        assert run.is_disabled()  # shown, not sent yet
        asr.screenshot(path=notebook.shot("recorded"))
        path = _use_and_wait_for_the_path(page, asr, "source_audio", "recording.wav")
        with wave.open(str(path)) as recorded:  # the browser wrote a WAV: 16-bit PCM, mono, 16 kHz
            assert (recorded.getnchannels(), recorded.getsampwidth(), recorded.getframerate()) == (
                1,
                2,
                16000,
            )
            assert recorded.getnframes() / 16000 > 3
        page.wait_for_function("el => !el.disabled", arg=run.element_handle())
        run.click()
        text = _wait_result(page, asr)
        assert WORDS in _words(text), (text, level)
        # the widget is drawn again when the run ends (its output is updated): the clip stays shown
        asr.locator("audio.aix-capture-clip").wait_for()
        assert asr.locator(".aix-capture-status").inner_text().startswith("sent recording.wav (")
        asr.screenshot(path=notebook.shot("transcribed"))


def test_camera_snapshot_then_run_reads_the_text(notebook: Page) -> None:
    """Camera (a live preview), Snap (a PNG, previewed), Use, Run: the OCR model reads the line."""
    page, ocr = notebook.page, notebook.widgets.nth(1)
    with notebook.step("camera"):
        ocr.scroll_into_view_if_needed()
        ocr.locator(".aix-capture-camera").click()
        live = ocr.locator("video.aix-capture-live")
        page.wait_for_function("el => el.videoWidth > 0 && !el.paused", arg=live.element_handle())
        ocr.screenshot(path=notebook.shot("camera-live"))
        ocr.locator(".aix-capture-snap").click()
        snapshot = ocr.locator("img.aix-capture-clip")
        snapshot.wait_for()
        page.wait_for_function("el => el.complete && el.naturalWidth === 900", arg=snapshot.element_handle())
        assert live.count() == 0  # the camera is closed once the picture is taken
        ocr.screenshot(path=notebook.shot("snapshot"))
        path = _use_and_wait_for_the_path(page, ocr, "image", "snapshot.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        run = ocr.locator("button.aix-run")
        page.wait_for_function("el => !el.disabled", arg=run.element_handle())
        run.click()
        text = _wait_result(page, ocr)
        assert WORDS in _words(text), text
        ocr.locator("img.aix-capture-clip").wait_for()
        ocr.screenshot(path=notebook.shot("read"))


def _drop(widget: Any, data: bytes, name: str, mime: str) -> None:
    """Drop a file on the widget's capture area, as a drag from the desktop does."""
    capture = widget.locator(".aix-capture")
    transfer = capture.evaluate_handle(
        "(el, [b64, name, mime]) => { const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));"
        " const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {type: mime})); return dt; }",
        [base64.b64encode(data).decode(), name, mime],
    )
    capture.dispatch_event("dragover", {"dataTransfer": transfer})
    capture.dispatch_event("drop", {"dataTransfer": transfer})


def _noise_png(tmp: Path) -> bytes:
    """A PNG of random pixels: about 1.5 MB, six chunks (more than the browser keeps in flight)."""
    pixels = np.random.default_rng(7).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp / "noise.png")
    return (tmp / "noise.png").read_bytes()


def test_upload_and_drop_fill_the_value_and_over_the_limit_is_refused(notebook: Page, tmp_path: Path) -> None:
    """Upload or drop a file on the OCR widget: its bytes, whole, become the value (a 1.5 MB one in
    acknowledged chunks); on the widget with a 1 KB limit a file is refused in one line, nothing sent."""
    page, ocr, small = notebook.page, notebook.widgets.nth(1), notebook.widgets.nth(3)
    with notebook.step("drop"):
        ocr.scroll_into_view_if_needed()
        field = ocr.locator(".aix-param-image input[type=text]")
        noise = _noise_png(tmp_path)
        assert len(noise) > 5 * 256 * 1024
        _drop(ocr, noise, "noise.png", "image/png")
        page.wait_for_function("el => el.value.endsWith('/noise.png')", arg=field.element_handle())
        assert Path(field.input_value()).read_bytes() == noise
        with page.expect_file_chooser() as chooser:
            ocr.locator(".aix-capture-upload").click()
        chooser.value.set_files(str(PICTURE))
        page.wait_for_function("el => el.value.endsWith('/text_line.png')", arg=field.element_handle())
        picture = PICTURE.read_bytes()
        assert Path(field.input_value()).read_bytes() == picture
        _drop(ocr, picture, "dropped line.png", "image/png")
        page.wait_for_function("el => el.value.endsWith('/dropped line.png')", arg=field.element_handle())
        assert Path(field.input_value()).read_bytes() == picture
        ocr.locator("img.aix-capture-clip").wait_for()
        small.scroll_into_view_if_needed()
        _drop(small, picture, "text_line.png", "image/png")
        status = small.locator(".aix-capture-status.aix-capture-error")
        status.wait_for()
        assert status.inner_text() == "text_line.png is 8.3 KB, over the 1.0 KB limit; nothing was sent"
        _drop(small, b"plain words", "notes.txt", "text/plain")
        page.wait_for_function(
            "el => el.textContent.startsWith('notes.txt is not an image')", arg=status.element_handle()
        )
        time.sleep(1.0)  # a message sent anyway would have filled the field by now
        assert small.locator(".aix-param-image input[type=text]").input_value() == ""
        assert small.locator("button.aix-run").is_disabled()
        small.screenshot(path=notebook.shot("over-the-limit"))


def test_spoken_answer_plays_with_a_duration(notebook: Page) -> None:
    """Piper's answer (an audio file) is shown as a player whose duration is over zero."""
    page, tts = notebook.page, notebook.widgets.nth(2)
    with notebook.step("speech"):
        tts.scroll_into_view_if_needed()
        tts.locator("button.aix-run").click()
        _wait_finished(page, tts)
        player = tts.locator(".aix-result audio")
        player.wait_for()
        page.wait_for_function("el => el.duration > 0 && isFinite(el.duration)", arg=player.element_handle())
        assert player.evaluate("el => el.duration") > 0.5
        tts.screenshot(path=notebook.shot("spoken"))


def test_a_recording_stops_at_the_limit_and_still_fits(notebook: Page) -> None:
    """With a 51.2 KB limit, recording stops by itself after about 1.6 s, says why, and the WAV fits."""
    page, short = notebook.page, notebook.widgets.nth(4)
    with notebook.step("record-limit"):
        short.scroll_into_view_if_needed()
        record = short.locator(".aix-capture-record")
        record.click()
        page.wait_for_function("el => el.textContent === 'Stop'", arg=record.element_handle())
        status = short.locator(".aix-capture-status")
        page.wait_for_function(
            "el => el.textContent.startsWith('stopped at the 51.2 KB limit: recording.wav, ')",
            arg=status.element_handle(),
            timeout=30_000,
        )
        assert record.inner_text() == "Record"
        short.locator("audio.aix-capture-clip").wait_for()
        path = _use_and_wait_for_the_path(page, short, "source_audio", "recording.wav")
        assert path.stat().st_size <= int(0.05 * 2**20)
        with wave.open(str(path)) as recorded:
            assert 1.0 < recorded.getnframes() / recorded.getframerate() <= 1.64
        short.screenshot(path=notebook.shot("record-limit"))
