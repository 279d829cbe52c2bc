"""The ModelWidget's result area plays a media output, embedded (display.py renders it), with the
embedded backend's real speech synthesis model."""

from __future__ import annotations

import base64

from aix_jupyter import ModelWidget
from aix_jupyter import display as aix_display
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.media import download


def test_a_synthesised_answer_plays_in_the_result_area_and_its_static_copy():
    w = ModelWidget("local/piper-joe")
    response = w.run(text="Good morning.")
    assert response.status is ResponseStatus.SUCCESS, response.error_message
    (output,) = w.result.outputs
    wav = download(response.data)
    assert wav[:4] == b"RIFF"
    assert output["data"]["text/html"] == (
        f'<audio controls src="data:audio/wav;base64,{base64.b64encode(wav).decode()}"></audio>'
    )
    assert output["data"]["text/plain"] == f"<audio/wav, {aix_display._size_text(len(wav))}, embedded>"
