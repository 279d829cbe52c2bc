"""Media out (and in) through the notebook layer, against a real wire server on loopback: audio plays
and images show inline in runs, ``%aix map`` tables, ``BatchResult`` / ``Comparison`` HTML, embedded up to
the cap (``AixMagics.embed_max_bytes`` / ``AIX_EMBED_MAX_BYTES``), a link and a note beyond it."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from IPython.display import Audio

from aix_jupyter import display as aix_display
from aix_jupyter.core.compare import compare
from aix_jupyter.core.model import Model
from aix_jupyter.core.response import ModelResponse
from tests.core.media_files import png_bytes, wav_bytes
from tests.core.wireserver import Reply, WireServer, default_metadata

WAV = wav_bytes()
PNG = png_bytes()
KEY = "sk-media-test-0123456789"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[WireServer]:
    with WireServer() as srv:
        srv.uploads.update({"tone": WAV, "pic": PNG, "text": b"just text"})
        srv.models["tts"] = default_metadata("tts")
        srv.models["asr"] = default_metadata(
            "asr", params=[{"name": "data", "dataType": "audio", "required": True}]
        )
        monkeypatch.setenv("AIX_BACKEND_URL", srv.url)
        monkeypatch.setenv("AIXPLAIN_API_KEY", KEY)
        monkeypatch.delenv("TEAM_API_KEY", raising=False)
        monkeypatch.delenv("AIX_EMBED_MAX_BYTES", raising=False)
        aix_display._fetched.clear()
        yield srv
    aix_display.set_embed_max_bytes(None)
    aix_display._fetched.clear()


def answer(server: WireServer, *data: str) -> None:
    """The next runs answer these outputs, in order."""
    replies = [Reply(json={"status": "SUCCESS", "completed": True, "data": d}) for d in data]
    server.script("POST /api/v2/execute", *replies)


def data_uri(mime: str, content: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(content).decode()


# -- the one place: display.output_media ----------------------------------------------------------


def test_an_audio_url_of_the_server_is_embedded_and_plays_offline(server):
    bundle, _ = aix_display.response_bundle(ModelResponse("SUCCESS", data=f"{server.url}/files/tone"))
    assert bundle["text/html"] == f'<audio controls src="{data_uri("audio/wav", WAV)}"></audio>'
    assert bundle["text/plain"] == f"<audio/wav, {aix_display._size_text(len(WAV))}, embedded>"
    assert server.seen("GET", "/files/tone")[0].headers.get("x-api-key") == KEY  # a configured host


def test_an_image_url_becomes_an_image_output(server):
    bundle, _ = aix_display.response_bundle(ModelResponse("SUCCESS", data=f"{server.url}/files/pic"))
    assert bundle["image/png"] == base64.b64encode(PNG).decode()


def test_a_url_that_is_not_media_stays_text(server):
    bundle, _ = aix_display.response_bundle(ModelResponse("SUCCESS", data=f"{server.url}/files/text"))
    assert bundle["text/plain"] == f"{server.url}/files/text" and "text/html" not in bundle


def test_over_the_cap_a_player_of_the_link_and_a_note(server, monkeypatch):
    server.ranges = True  # its first bytes tell what it is, without reading the rest
    monkeypatch.setenv("AIX_EMBED_MAX_BYTES", "100")
    url = f"{server.url}/files/tone"
    bundle, _ = aix_display.response_bundle(ModelResponse("SUCCESS", data=url))
    assert bundle["text/html"].startswith(f'<audio controls src="{url}"></audio><br><small>not embedded: ')
    assert "over the 100 bytes cap (AIX_EMBED_MAX_BYTES)" in bundle["text/html"]
    assert bundle["text/plain"].startswith(url + "\n(not embedded:")
    assert server.seen("GET", "/files/tone")[-1].headers["range"] == "bytes=0-63"
    aix_display.set_embed_max_bytes(len(WAV))  # the setting wins over the environment
    assert aix_display.output_media(url).embedded


def test_over_the_cap_without_ranges_a_link_and_a_note(server, monkeypatch):
    monkeypatch.setenv("AIX_EMBED_MAX_BYTES", "100")
    url = f"{server.url}/files/tone"
    bundle, _ = aix_display.response_bundle(ModelResponse("SUCCESS", data=url))
    assert bundle["text/html"].startswith(
        f'<a href="{url}" target="_blank" rel="noopener">{url}</a><br><small>'
    )
    assert "not embedded: the file is over the 100 bytes cap" in bundle["text/html"]
    named = aix_display.output_media(f"{server.url}/files/tone.wav")  # a name that says what it is
    assert named is not None and named.mime == "audio/x-wav" and not named.embedded


def test_a_lowered_cap_applies_to_a_file_already_shown(server):
    url = f"{server.url}/files/tone"
    assert aix_display.output_media(url).embedded
    aix_display.set_embed_max_bytes(100)  # no cache clearing: the bytes kept are not embedded past it
    shown = aix_display.output_media(url)
    assert shown is not None and not shown.embedded and "over the 100 bytes cap" in shown.note


def test_a_file_over_the_cap_is_not_downloaded_again_for_each_display(server, monkeypatch):
    monkeypatch.setenv("AIX_EMBED_MAX_BYTES", "100")
    server.uploads["tone.wav"] = WAV  # a name that says audio: nothing else is fetched to tell
    url = f"{server.url}/files/tone.wav"
    for _ in range(3):
        shown = aix_display.output_media(url)
        assert shown is not None and not shown.embedded and "over the 100 bytes cap" in shown.note
    assert len(server.seen("GET", "/files/tone.wav")) == 1


def test_a_format_asked_for_shows_the_link_as_text_without_fetching_it(server):
    url = f"{server.url}/files/tone"
    provenance = aix_display.Provenance(model_id="tts", output_format="text")
    bundle, _ = aix_display.response_bundle(ModelResponse("SUCCESS", data=url), provenance)
    assert bundle == {"text/plain": url}
    assert server.seen("GET", "/files/tone") == []


def test_a_foreign_url_is_only_fetched_when_its_name_says_media(server):
    with WireServer() as foreign:
        foreign.uploads["x"] = WAV
        assert aix_display.output_media(f"http://example.invalid:{foreign.port}/files/x") is None
        assert foreign.requests == []
        shown = aix_display.output_media("https://example.invalid/speech.wav")
        assert shown is not None and not shown.embedded and shown.note.startswith("not embedded: download")


def test_a_fetch_that_fails_shows_the_link_with_why(server):
    shown = aix_display.output_media(f"{server.url}/files/gone.wav")
    assert shown.src == f"{server.url}/files/gone.wav" and "Resource not found" in shown.note


def test_tables_render_media_cells(server):
    answer(server, f"{server.url}/files/tone", f"{server.url}/files/pic", "plain text")
    model = Model("tts", url=server.run_url)
    batch = model.map(["a", "b", "c"], concurrency=1)
    html = batch.html(media=aix_display.media_cell)
    assert f'<audio controls src="{data_uri("audio/wav", WAV)}"></audio>' in html
    assert f'<img src="{data_uri("image/png", PNG)}" alt="model output"/>' in html
    assert "plain text" not in html  # only media rows are listed
    assert "<audio" not in batch._repr_html_()  # the core alone renders no media
    answer(server, f"{server.url}/files/tone", "plain")
    comparison = compare([model, Model("tts2", url=server.run_url)], "hi")
    html = comparison.html(media=aix_display.media_cell)
    assert '<audio controls src="data:audio/wav;base64,' in html and ">plain<br>" in html


# -- magics ---------------------------------------------------------------------------------------


def test_aix_run_shows_the_audio_inline_and_the_setting_caps_it(cell, server):
    answer(server, f"{server.url}/files/tone", f"{server.url}/files/tone")
    out = cell("%aix run tts Hello there")
    assert out.error is None, out.error
    html = [d["text/html"] for d in out.displays if "text/html" in d]
    assert html == [f'<audio controls src="{data_uri("audio/wav", WAV)}"></audio>']
    aix_display._fetched.clear()
    assert cell("%config AixMagics.embed_max_bytes = 10").error is None
    assert aix_display.embed_max_bytes() == 10
    out = cell("%aix run tts Hello again")
    html = [d["text/html"] for d in out.displays if "text/html" in d]
    assert "not embedded" in html[0] and "data:" not in html[0]
    assert cell("%config AixMagics.embed_max_bytes = None").error is None
    assert aix_display.embed_max_bytes() == aix_display.EMBED_MAX_BYTES


def test_chaining_an_output_url_into_a_media_input(cell, ip, server):
    answer(server, f"{server.url}/files/tone")
    ip.user_ns["speech"] = ModelResponse("SUCCESS", data=f"{server.url}/files/tone")
    out = cell("%aix run asr {speech.data}")
    assert out.error is None, out.error
    assert server.seen("POST", "/api/v2/execute")[-1].json()["data"] == f"{server.url}/files/tone"


@pytest.mark.parametrize("source", ["clip", "{clip}"])
def test_a_variable_holding_media_is_uploaded(cell, ip, server, source):
    ip.user_ns["clip"] = Audio(data=WAV)
    out = cell(f"%aix run asr {source}")
    assert out.error is None, out.error
    assert server.seen("PUT")[-1].body == WAV
    assert server.seen("POST", "/api/v2/execute")[-1].json()["data"].startswith(server.url + "/files/")


def test_aix_map_over_files_fails_the_bad_one_only(cell, ip, server, tmp_path):
    good = tmp_path / "good.wav"
    good.write_bytes(WAV)
    ip.user_ns["files"] = [str(good), str(tmp_path / "missing.wav"), good]
    out = cell("%aix map asr --concurrency 1 files")
    assert out.error is None, out.error
    text = out.displays[-1]["text/plain"] if out.displays else repr(out.result)
    assert "2 succeeded, 1 failed" in text and "no file" in text
    assert [r.body for r in server.seen("PUT")] == [WAV, WAV]


def test_aix_map_table_plays_audio_outputs(cell, ip, server):
    answer(server, f"{server.url}/files/tone", f"{server.url}/files/tone")
    ip.user_ns["texts"] = ["one", "two"]
    out = cell("%aix map tts --concurrency 1 texts")
    assert out.error is None, out.error
    html = out.result._repr_mimebundle_()["text/html"]
    assert html.count(f'<audio controls src="{data_uri("audio/wav", WAV)}"></audio>') == 2


def test_a_batch_result_shown_in_a_cell_plays_its_audio(cell, ip, server):
    answer(server, f"{server.url}/files/tone")
    out = cell("from aix_jupyter import Model\nModel('tts').map(['x'])")
    assert out.error is None, out.error
    formatted, _ = ip.display_formatter.format(out.result)
    assert "<audio controls" in formatted["text/html"]
