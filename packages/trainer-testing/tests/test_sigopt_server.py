"""The local SigOpt server answers SigOpt's REST calls (checked with plain HTTP here;
trainer-hpsearch's tests drive it with the real ``sigopt`` client)."""

from __future__ import annotations

import base64
import json
import math
import urllib.error
import urllib.request
from typing import Any

import pytest

from trainer_testing import LocalSigOptServer


def _call(server: LocalSigOptServer, method: str, path: str, body: Any = None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}/v1/{path}", data=data, method=method)
    auth = base64.b64encode(f"{token or server.token}:".encode()).decode()
    request.add_header("Authorization", f"Basic {auth}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


_PARAMETERS = [
    {"name": "lr", "type": "double", "bounds": {"min": 1e-5, "max": 1e-1}, "transformation": "log"},
    {"name": "epochs", "type": "int", "bounds": {"min": 1, "max": 3}},
    {"name": "size", "type": "categorical", "categorical_values": ["4", "8"]},
]


def test_an_experiment_suggests_runs_in_bounds_and_ranks_the_best() -> None:
    with LocalSigOptServer(projects=("p",)) as server:
        assert _call(server, "GET", "tokens/self")["client"] == "1"
        experiment = _call(
            server,
            "POST",
            "clients/1/projects/p/aiexperiments",
            {
                "name": "e",
                "parameters": _PARAMETERS,
                "budget": 2,
                "metrics": [{"name": "objective", "objective": "maximize"}],
            },
        )
        for value in (1.0, 5.0):
            run = _call(server, "POST", f"aiexperiments/{experiment['id']}/training_runs", {})
            lr, epochs, size = (run["assignments"][k] for k in ("lr", "epochs", "size"))
            assert 1e-5 <= lr <= 1e-1 and epochs in (1, 2, 3) and size in ("4", "8")
            _call(
                server,
                "MERGE",
                f"training_runs/{run['id']}",
                {"values": {"objective": {"value": value}}, "state": "completed"},
            )
        progress = _call(server, "GET", f"aiexperiments/{experiment['id']}")["progress"]
        assert progress["remaining_budget"] == 0
        best = _call(server, "GET", f"aiexperiments/{experiment['id']}/best_training_runs")
        assert [run["id"] for run in best["data"]] == ["2"]
        assert math.isclose(best["data"][0]["values"]["objective"]["value"], 5.0)


def test_bad_token_unknown_project_and_unknown_route_are_errors() -> None:
    with LocalSigOptServer() as server:
        for path, token, status in [
            ("tokens/self", "wrong", 401),
            ("clients/1/projects/missing", None, 404),
            ("nowhere", None, 404),
        ]:
            with pytest.raises(urllib.error.HTTPError) as error:
                _call(server, "GET", path, token=token)
            error.value.close()  # the error holds the response's socket
            assert error.value.code == status
