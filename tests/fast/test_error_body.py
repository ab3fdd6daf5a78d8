"""One error body for every interface: the same bad input gives the same ``{"error": {...}}`` over HTTP
and over the WebSocket (its last message before the close code)."""

from __future__ import annotations

from tests.fast.ws import expect_close, url
from tests.http_utils import assert_error, jfk_file, post


def test_the_same_error_over_http_and_websocket(client) -> None:
    http = assert_error(post(client, jfk_file(), {"model": "whisper-99"}), 404, "model", "model_not_found")
    with client.websocket_connect(url(model="whisper-99")) as ws:
        errors, code = expect_close(ws)
    assert code == 1008 and errors == [http]


def test_a_bad_language_is_refused_with_the_same_type_param_and_code(client) -> None:
    http = assert_error(post(client, jfk_file(), {"language": "xx"}), 400, "language")
    with client.websocket_connect(url(language="xx")) as ws:
        errors, code = expect_close(ws)
    assert code == 1008 and len(errors) == 1
    same = ("type", "param", "code")
    assert {k: errors[0][k] for k in same} == {k: http[k] for k in same}
