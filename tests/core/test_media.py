"""Media in and out against a real wire server on loopback: every kind of input is uploaded once and
keyed by its content, every bad input is a one-line ParameterError before anything is sent, and output
files are fetched with the runs' deadlines, caps and key rules."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from IPython.display import Audio, Image

from aix_jupyter.core import media
from aix_jupyter.core.config import Endpoints
from aix_jupyter.core.errors import ParameterError, RequestError
from aix_jupyter.core.model import Model
from aix_jupyter.core.protocol import run_request
from aix_jupyter.core.requestkey import request_key
from aix_jupyter.core.response import ModelResponse
from tests.core.conftest import KEY, call
from tests.core.media_files import png_bytes, wav_bytes
from tests.core.wireserver import Reply, WireServer

WAV = wav_bytes()
PNG = png_bytes()


def media_model(server: WireServer, kind: str = "audio", **extra: object) -> Model:
    params = [{"name": "data", "dataType": kind, "required": True}]
    params += [{"name": "mask", "dataType": "image", "required": False}, {"name": "lang", "dataType": "text"}]
    return Model("m", url=server.run_url, api_key=KEY, model_params=params, **extra)


def sent(server: WireServer) -> dict:
    return server.seen("POST", "/api/v2/execute")[0].json()


def uploaded(server: WireServer) -> list[bytes]:
    return [r.body for r in server.seen("PUT")]


# -- every kind of input ----------------------------------------------------------------------


def _inputs(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "clip.wav"
    path.write_bytes(WAV)
    return {
        "path string": str(path),
        "pathlib.Path": path,
        "bytes": WAV,
        "bytearray": bytearray(WAV),
        "memoryview": memoryview(WAV),
        "IPython Audio (data)": Audio(data=WAV),
        "IPython Audio (file)": Audio(filename=str(path)),
    }


@pytest.mark.parametrize(
    "name",
    [
        "path string",
        "pathlib.Path",
        "bytes",
        "bytearray",
        "memoryview",
        "IPython Audio (data)",
        "IPython Audio (file)",
    ],
)
def test_each_kind_of_local_audio_is_uploaded_once_then_sent_as_its_link(mode, server, tmp_path, name):
    value = _inputs(tmp_path)[name]
    response = call(mode, media_model(server), "run", value)
    assert response.status.value == "SUCCESS", response.error_message
    assert uploaded(server) == [WAV]
    temp = server.seen("POST", "/sdk/file/upload/temp-url")[0].json()
    assert temp["contentType"] in ("audio/wav", "audio/x-wav") and temp["originalName"].endswith(".wav")
    assert sent(server)["data"].startswith(server.url + "/files/")
    assert "x-api-key" not in server.seen("PUT")[0].headers


def test_a_url_is_sent_as_it_is_and_nothing_is_uploaded(server):
    for url in ("https://example.com/a.wav", "s3://bucket/key.wav", "data:audio/wav;base64,UklGRg=="):
        media_model(server).run(url)
        assert server.requests[-1].json()["data"] == url
    assert not server.seen("PUT")


def test_an_ipython_audio_holding_a_url_sends_the_url(server):
    media_model(server).run(Audio(url="https://example.com/speech.wav"))
    assert sent(server)["data"] == "https://example.com/speech.wav" and not server.seen("PUT")


def test_images_ipython_and_pil_are_uploaded_as_png(server, tmp_path):
    from PIL import Image as PILImage

    model = media_model(server, "image")
    model.run(Image(data=PNG))
    picture = PILImage.new("RGB", (5, 2), (0, 128, 255))
    model.run(picture)
    first, second = uploaded(server)
    assert first == PNG
    assert second.startswith(b"\x89PNG") and PILImage.open(__import__("io").BytesIO(second)).size == (5, 2)
    names = [r.json()["contentType"] for r in server.seen("POST", "/sdk/file/upload/temp-url")]
    assert names == ["image/png", "image/png"]


def test_a_media_parameter_beside_data_and_in_a_dict_is_uploaded_too(server, tmp_path):
    model = media_model(server)
    model.run(WAV, parameters={"mask": PNG, "lang": "en"})
    body = sent(server)
    assert body["data"].startswith(server.url + "/files/") and body["mask"].startswith(server.url + "/files/")
    assert body["lang"] == "en" and sorted(uploaded(server)) == sorted([WAV, PNG])
    model.run({"data": WAV, "mask": Image(data=PNG)})
    assert len(uploaded(server)) == 4


def test_the_same_content_twice_in_one_run_is_uploaded_once(server):
    media_model(server).run({"data": WAV, "mask": PNG, "other": WAV})
    assert sorted(uploaded(server)) == sorted([WAV, PNG])


def test_a_model_without_a_schema_still_uploads_bytes_and_existing_paths(server, tmp_path):
    model = Model("echo", url=server.run_url, api_key=KEY)
    model.run(WAV)
    (tmp_path / "a.png").write_bytes(PNG)
    model.run(str(tmp_path / "a.png"))
    model.run("just some text")  # not a file: text
    assert uploaded(server) == [WAV, PNG]
    assert server.seen("POST", "/api/v2/execute")[-1].json()["data"] == "just some text"


# -- the request key is the content's digest -----------------------------------------------------

EP = Endpoints("https://models.example.com/api/v1/execute", "https://api.example.com", None)


def test_the_key_of_any_form_of_the_same_content_is_the_same(tmp_path):
    schema = Model("m", url=EP.run_url, model_params=[{"name": "data", "dataType": "audio"}]).model_params
    path = tmp_path / "x.wav"
    path.write_bytes(WAV)
    keys = {
        request_key(EP, "m", None, run_request(schema, value, None)).digest
        for value in (str(path), path, WAV, Audio(data=WAV), bytearray(WAV))
    }
    assert len(keys) == 1
    key = request_key(EP, "m", None, run_request(schema, WAV, None))
    assert key.body["data"] == "sha256:" + hashlib.sha256(WAV).hexdigest()
    assert str(tmp_path) not in json.dumps(key.body)
    other = request_key(EP, "m", None, run_request(schema, wav_bytes(freq=220.0), None))
    assert other.digest != key.digest


def test_a_cached_media_run_is_answered_without_uploading_again(server, tmp_path):
    model = media_model(server, cache=tmp_path / "cache.sqlite3")
    first = model.run(WAV)
    again = model.run(Audio(data=WAV))
    assert first.data == again.data and len(uploaded(server)) == 1
    assert len(server.seen("POST", "/api/v2/execute")) == 1


# -- bad input: one line, naming the parameter and the file, nothing sent ------------------------


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("audio", "missing.wav", "parameter 'data': no file 'missing.wav'"),
        ("audio", b"", "parameter 'data': the data given (0 bytes) is empty"),
        ("audio", PNG, "parameter 'data': the data given (69 bytes) is not audio (PNG data); give WAV, MP3"),
        ("image", WAV, "is not image (WAV data); give PNG, JPEG, GIF, WebP, BMP"),
        ("image", b"hello world", "is not image (not a format it knows)"),
        ("audio", "two\nlines", "parameter 'data': expects audio"),
    ],
)
def test_bad_media_is_a_one_line_parameter_error_before_anything_is_sent(server, kind, value, message):
    if isinstance(value, bytes) and value == PNG:
        message = message.replace("69", str(len(PNG)))
    with pytest.raises(ParameterError) as info:
        media_model(server, kind).run(value)
    text = str(info.value)
    assert message in text and "\n" not in text and info.value.parameter == "data"
    assert server.requests == []


def test_an_empty_or_wrong_file_names_the_file(server, tmp_path):
    empty, text = tmp_path / "empty.wav", tmp_path / "notes.wav"
    empty.write_bytes(b"")
    text.write_text("not audio at all")
    with pytest.raises(ParameterError, match=r"parameter 'data': file '.*empty\.wav' is empty"):
        media_model(server).run(str(empty))
    with pytest.raises(ParameterError, match=r"file '.*notes\.wav' is not audio"):
        media_model(server).run(text)
    with pytest.raises(ParameterError, match=r"parameter 'mask': file '.*notes\.wav' is not image"):
        media_model(server).run(WAV, parameters={"mask": str(text)})
    with pytest.raises(ParameterError, match=r"'.*' is not a file"):
        media_model(server).run(tmp_path)
    assert server.requests == []


def test_in_a_batch_a_bad_item_fails_alone(server, tmp_path):
    good = tmp_path / "good.wav"
    good.write_bytes(WAV)
    result = media_model(server).map([str(good), str(tmp_path / "gone.wav"), WAV], concurrency=2)
    assert [r.status.value for r in result] == ["SUCCESS", "FAILED", "SUCCESS"]
    assert "no file" in result[1].error_message and "gone.wav" in result[1].error_message
    assert len(uploaded(server)) == 2


# -- media out: download / save ------------------------------------------------------------------


@pytest.fixture
def stored(server: WireServer) -> str:
    """The URL of a WAV stored on the server (uploaded by a run)."""
    media_model(server).run(WAV)
    return sent(server)["data"]


@pytest.fixture
def configured(server: WireServer, monkeypatch: pytest.MonkeyPatch) -> WireServer:
    monkeypatch.setenv("AIX_BACKEND_URL", server.url)
    monkeypatch.setenv("AIXPLAIN_API_KEY", KEY)
    monkeypatch.delenv("TEAM_API_KEY", raising=False)
    return server


def test_download_returns_the_bytes_or_writes_a_file_sync_and_async(mode, stored, tmp_path):
    assert call(mode, media, "download", stored) == WAV
    target = call(mode, media, "download", stored, tmp_path / "out.wav")
    assert target == tmp_path / "out.wav" and target.read_bytes() == WAV
    into_folder = call(mode, media, "download", stored, tmp_path)
    assert into_folder.parent == tmp_path and into_folder.suffix == ".wav" and into_folder.read_bytes() == WAV


def test_response_save_and_asave(stored, tmp_path):
    response = ModelResponse("SUCCESS", data=stored)
    assert response.save(tmp_path / "a.wav").read_bytes() == WAV
    assert asyncio.run(response.asave(tmp_path / "b.wav")).read_bytes() == WAV
    with pytest.raises(RequestError, match="is not a file URL"):
        ModelResponse("SUCCESS", data="hello").save(tmp_path / "c.wav")


def test_the_key_goes_to_the_configured_host_only(configured, stored, tmp_path):
    media.download(stored)
    assert configured.seen("GET", "/files/")[-1].headers.get("x-api-key") == KEY
    with WireServer() as foreign:  # another origin: it gets the request, never the key
        foreign.uploads["abc"] = PNG
        assert media.download(f"{foreign.url}/files/abc") == PNG
        assert "x-api-key" not in foreign.seen("GET")[0].headers
        assert "authorization" not in foreign.seen("GET")[0].headers


def test_a_download_over_the_reply_cap_fails_in_one_line(stored, monkeypatch):
    monkeypatch.setenv("AIX_MAX_REPLY_BYTES", "100")
    with pytest.raises(RequestError, match=r"larger than 100 bytes.*AIX_MAX_REPLY_BYTES") as info:
        media.download(stored)
    assert "\n" not in str(info.value)


def test_a_download_keeps_its_deadline(server):
    server.script("GET /files/slow", Reply(hang=True))
    with pytest.raises(RequestError, match=r"did not finish within 0.3 s"):
        media.download(f"{server.url}/files/slow", timeout=0.3)


def test_an_http_error_or_a_non_url_is_a_request_error(server):
    with pytest.raises(RequestError, match=r"download of .*/files/nothing failed: Resource not found"):
        media.download(f"{server.url}/files/nothing")
    with pytest.raises(RequestError, match="is not a file URL"):
        media.download("ftp://example.com/x.wav")


def test_an_error_never_shows_a_urls_user_or_password(server):
    url = server.url.replace("://", "://ada:s3cret-pw@") + "/files/nothing?sig=s3cret-sig"
    shown = r"download of http://127\.0\.0\.1:\d+/files/nothing failed"
    with pytest.raises(RequestError, match=shown) as info:
        media.download(url)
    assert "s3cret" not in str(info.value) and "ada" not in str(info.value)


def test_a_data_uri_is_decoded_without_a_request(tmp_path):
    import base64

    uri = "data:audio/wav;base64," + base64.b64encode(WAV).decode()
    assert media.download(uri) == WAV
    assert media.download(uri, tmp_path).name == "output.wav"


def test_download_is_exported():
    import aix_jupyter

    assert aix_jupyter.download is media.download and aix_jupyter.adownload is media.adownload


# -- sniffing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "name", "kind"),
    [
        (WAV, "WAV", "audio"),
        (b"ID3\x03\x00", "MP3", "audio"),
        (b"\xff\xfb\x90\x00", "MP3", "audio"),
        (b"OggS\x00\x02", "OGG", "audio"),
        (b"fLaC\x00\x00", "FLAC", "audio"),
        (b"\x1a\x45\xdf\xa3\x01", "WebM", "audio"),
        (PNG, "PNG", "image"),
        (b"\xff\xd8\xff\xe0", "JPEG", "image"),
        (b"GIF89a\x01\x00", "GIF", "image"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP", "image"),
        (b"BM\x00\x00", "BMP", "image"),
        (b"\x00\x00\x00\x18ftypmp42", "MP4", "video"),
    ],
)
def test_sniffing_knows_the_formats(head, name, kind):
    found = media.sniff(head)
    assert found is not None and found.name == name and media.kind_of(head) == kind


def test_unknown_content_is_not_sniffed():
    assert media.sniff(b"hello") is None and media.kind_of(b"") is None


def test_keying_a_request_leaves_its_body_as_it_is_sent():
    request = run_request(None, "x", None, stream=True)
    request_key(EP, "m", None, request)
    assert request.body == {"data": "x", "options": {"stream": True}}


def test_streams_and_comparisons_upload_their_media_too(mode, server):
    from aix_jupyter.core.compare import compare

    model = media_model(server, supports_streaming=True)

    async def astream() -> list:
        return [chunk async for chunk in await model.arun_stream(WAV)]

    chunks = list(model.run_stream(WAV)) if mode == "sync" else asyncio.run(astream())
    assert chunks and uploaded(server) == [WAV]
    assert sent(server)["options"] == {"stream": True}
    assert sent(server)["data"].startswith(server.url + "/files/")
    comparison = compare([media_model(server), Model("other", url=server.run_url, api_key=KEY)], WAV)
    assert all(r.ok for rs in comparison.responses.values() for r in rs)
    assert uploaded(server) == [WAV, WAV, WAV]


def test_a_smaller_cap_per_download_and_sniffing_a_url_by_its_first_bytes(server, stored):
    from aix_jupyter.core.transport import ReplyTooLarge

    with pytest.raises(ReplyTooLarge, match=r"larger than 100 bytes, the cap \(max_bytes\)"):
        media.download(stored, max_bytes=100)
    assert media.download(stored, max_bytes=len(WAV)) == WAV
    with pytest.raises(ParameterError, match="max_bytes must be a number of bytes >= 0"):
        media.download(stored, max_bytes=-1)
    assert media.sniff_url(stored) is None  # the server sent the whole file: more than the first bytes
    server.ranges = True
    found = media.sniff_url(stored)
    assert found is not None and found.name == "WAV"
    assert server.seen("GET", "/files/")[-1].headers["range"] == "bytes=0-63"
