"""LocalHubServer answers as the Hub does where the client library relies on it.

Plain HTTP (urllib) here, so trainer-testing's tests need no huggingface_hub; the
reporting and integration tests run the real client against the server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request

import pytest

from trainer_testing import DEFAULT_HUB_TOKEN, DEFAULT_HUB_USER, LocalHubServer


def call(hub, method, path, body=None, token=DEFAULT_HUB_TOKEN, raw=None):
    """(status, JSON answer, headers) of one request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(hub.url + path, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


@pytest.fixture
def hub():
    with LocalHubServer(tokens={DEFAULT_HUB_TOKEN: DEFAULT_HUB_USER, "hf_other": "other"}) as s:
        yield s


def create(hub, name="model", private=False, token=DEFAULT_HUB_TOKEN):
    visibility = "private" if private else "public"
    body = {"name": name, "organization": None, "visibility": visibility}
    return call(hub, "POST", "/api/repos/create", body, token)


def test_entering_points_the_client_at_the_server_and_leaving_restores(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    with LocalHubServer() as hub:
        assert os.environ["HF_ENDPOINT"] == hub.url
        assert os.environ["HF_HUB_DISABLE_XET"] == "1"
    assert "HF_ENDPOINT" not in os.environ


def test_repository_creation_answers_with_its_url_and_409_when_it_exists(hub):
    assert create(hub, private=True)[:2] == (
        200,
        {
            "url": f"{hub.url}/{DEFAULT_HUB_USER}/model",
            "name": "local-user/model",
            "id": "local-user/model",
        },
    )
    status, answer, _ = create(hub)
    assert status == 409 and answer["url"] == f"{hub.url}/{DEFAULT_HUB_USER}/model"
    assert hub.repos["local-user/model"].private is True


def test_unknown_tokens_get_401_and_private_repos_hide_from_others(hub):
    status, answer, _ = create(hub, token="hf_wrong")
    assert status == 401 and answer["error"] == "Invalid credentials in Authorization header"
    create(hub, private=True)
    status, _, headers = call(hub, "GET", "/api/models/local-user/model", token="hf_other")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"
    assert call(hub, "GET", "/api/models/local-user/model")[0] == 200


def test_a_commit_stores_regular_and_lfs_files_and_refuses_unknown_lfs_objects(hub):
    create(hub)
    weights = b"\x00" * 100
    oid = hashlib.sha256(weights).hexdigest()
    plan = call(hub, "POST", "/api/models/local-user/model/preupload/main",
                {"files": [{"path": "model.safetensors", "size": 100, "sample": ""},
                           {"path": "config.json", "size": 2, "sample": ""}]})[1]  # fmt: skip
    assert [f["uploadMode"] for f in plan["files"]] == ["lfs", "regular"]
    lines = [
        {"key": "header", "value": {"summary": "first"}},
        {"key": "file", "value": {"path": "config.json", "encoding": "base64",
                                  "content": base64.b64encode(b"{}").decode()}},
        {"key": "lfsFile", "value": {"path": "model.safetensors", "algo": "sha256", "oid": oid}},
    ]  # fmt: skip
    ndjson = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    commit_path = "/api/models/local-user/model/commit/main"
    assert call(hub, "POST", commit_path, raw=ndjson)[0] == 422  # never uploaded
    assert call(hub, "PUT", f"/lfs-upload/{oid}", raw=b"not the content")[0] == 400
    assert call(hub, "PUT", f"/lfs-upload/{oid}", raw=weights)[0] == 200
    status, answer, _ = call(hub, "POST", commit_path, raw=ndjson)
    assert status == 200 and answer["commitOid"] == hub.repos["local-user/model"].head()
    assert hub.repos["local-user/model"].files == {
        "config.json": b"{}",
        "model.safetensors": weights,
    }
    assert call(hub, "POST", commit_path, raw=ndjson, token="hf_other")[0] == 403  # not theirs


def test_readme_front_matter_that_does_not_parse_is_refused(hub):
    pytest.importorskip("yaml")
    good = call(hub, "POST", "/api/validate-yaml", {"content": "---\ntags:\n- a\n---\n# x\n"})
    assert good[0] == 200
    status, answer, _ = call(hub, "POST", "/api/validate-yaml", {"content": "---\na: [\n---\n"})
    assert status == 400 and answer["errors"]
