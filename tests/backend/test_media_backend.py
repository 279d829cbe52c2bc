"""Media inputs uploaded to the real backend (the app ``aix serve`` runs, on loopback): the model's
function gets the uploaded file, and the file URLs the backend hands out download through the core."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.display import Audio, Image

from aix_jupyter.backend.app import create_app
from aix_jupyter.backend.catalog import Catalog, ModelSpec, param
from aix_jupyter.backend.server import BackendServer
from aix_jupyter.core import media
from aix_jupyter.core.config import resolve_endpoints
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.factory import ModelFactory
from aix_jupyter.core.flows import drive_sync, upload_flow
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.core.sync_transport import SyncTransport
from tests.backend.conftest import TOKEN
from tests.core.media_files import png_bytes, wav_bytes

WAV = wav_bytes()
PNG = png_bytes()


def describe(inputs: dict, ctx: object) -> str:
    """What the model's function received: the format and size of the file behind each media input."""
    parts = []
    for name in ("audio", "picture"):
        if inputs.get(name):
            content = Path(inputs[name]).read_bytes()
            parts.append(f"{name}: {media.sniff(content).name} {len(content)} bytes")
    return "; ".join(parts)


@pytest.fixture(scope="module")
def served() -> Iterator[BackendServer]:
    spec = ModelSpec(
        id="test/media-info",
        name="media info",
        function="speech-recognition",
        runner=describe,
        params=ModelParameters([param("audio", "audio", required=True), param("picture", "image")]),
        primary="audio",
        builtin=False,
    )
    server = BackendServer(create_app(Catalog([spec]), token=TOKEN), token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def model(served: BackendServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIX_BACKEND_URL", served.base_url)
    monkeypatch.setenv("AIXPLAIN_API_KEY", TOKEN)
    monkeypatch.delenv("TEAM_API_KEY", raising=False)
    return ModelFactory.get("test/media-info")


def test_the_schema_declares_the_media_kinds(model):
    assert model.model_params["audio"].data_type == "audio"
    assert model.model_params["picture"].data_type == "image"


def test_each_input_kind_reaches_the_function_as_the_uploaded_file(model, tmp_path):
    path = tmp_path / "clip.wav"
    path.write_bytes(WAV)
    expected = f"audio: WAV {len(WAV)} bytes"
    for value in (str(path), path, WAV, Audio(data=WAV), Audio(filename=str(path))):
        response = model.run(value)
        assert response.status.value == "SUCCESS", response.error_message
        assert response.data == expected


def test_a_media_parameter_and_a_pil_image(model):
    from PIL import Image as PILImage

    response = model.run(WAV, parameters={"picture": Image(data=PNG)})
    assert response.data == f"audio: WAV {len(WAV)} bytes; picture: PNG {len(PNG)} bytes"
    picture = model.run({"audio": WAV, "picture": PILImage.new("L", (3, 3), 128)}).data
    assert picture.startswith("audio: WAV") and "picture: PNG" in picture


def test_async_runs_and_batches_upload_too(model, tmp_path):
    import asyncio

    assert asyncio.run(model.arun(WAV)).data == f"audio: WAV {len(WAV)} bytes"
    job = model.run_async(WAV)
    assert model.sync_poll(job.url).data == f"audio: WAV {len(WAV)} bytes"
    good = tmp_path / "a.wav"
    good.write_bytes(WAV)
    batch = model.map([str(good), PNG, good], concurrency=2)
    assert [r.status.value for r in batch] == ["SUCCESS", "FAILED", "SUCCESS"]
    message = batch[1].error_message
    assert "parameter 'audio'" in message and "is not audio (PNG data)" in message


def test_wrong_media_never_reaches_the_server(model, served):
    before = len(served.state.uploads._uploads)
    with pytest.raises(ParameterError, match=r"parameter 'audio': the data given .* is not audio"):
        model.run(PNG)
    assert len(served.state.uploads._uploads) == before


def test_a_file_url_of_the_backend_downloads_through_the_core(model, tmp_path):
    endpoints = resolve_endpoints()
    local = media.to_media(WAV, "audio", "audio")
    link = drive_sync(upload_flow(local, endpoints.backend_url, None), SyncTransport(endpoints))
    assert link.startswith(endpoints.backend_url + "/files/")
    assert media.download(link) == WAV
    saved = media.download(link, tmp_path)
    assert saved.read_bytes() == WAV and saved.suffix == ".wav"
