"""Media in a real ipykernel with the embedded backend's real models: ``%aix run`` shows synthesised
speech as one embedded player, its URL chains into speech recognition, and ``%aix map`` runs over files
with a missing one failing alone."""

from __future__ import annotations

import pytest

from tests.magics.test_kernel import ROOT, kernel_with_aix, of, run

DATA = str(ROOT / "tests" / "data" / "speech_fox.wav")


@pytest.fixture(scope="module")
def kernel():
    yield from kernel_with_aix()


def test_speech_plays_embedded_and_chains_into_recognition(kernel):
    _, kc = kernel
    _, msgs = run(kc, "%aix run local/piper-joe -o speech Good morning.", allow_stdin=False)
    (shown,) = of(msgs, "display_data")
    html = shown["content"]["data"]["text/html"]
    assert html.startswith('<audio controls src="data:audio/wav;base64,UklGR') and html.endswith("</audio>")
    assert not of(msgs, "execute_result")
    _, msgs = run(kc, "%aix run local/whisper-tiny-en {speech.data}", allow_stdin=False)
    (heard,) = of(msgs, "display_data")
    assert "morning" in heard["content"]["data"]["text/plain"].lower()


def test_map_over_files_fails_the_missing_one_alone(kernel):
    _, kc = kernel
    run(kc, f"files = [{DATA!r}, 'no-such-file.wav']", allow_stdin=False)
    _, msgs = run(kc, "%aix map local/whisper-tiny-en -o heard files", allow_stdin=False)
    show = "print([r.status.value for r in heard]); print(heard[1].error_message)"
    _, msgs = run(kc, show, allow_stdin=False)
    text = "".join(m["content"]["text"] for m in of(msgs, "stream"))
    assert "['SUCCESS', 'FAILED']" in text
    assert "parameter 'source_audio': no file 'no-such-file.wav'" in text
