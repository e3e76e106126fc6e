"""A local SigOpt API server, for tests of SigOpt searches without SigOpt's service.

It speaks the part of SigOpt's REST API (``/v1/...``, JSON bodies, HTTP basic auth with
the API token as user name) that the ``sigopt`` 8 client calls for an AI Experiment:
the token, projects, AI Experiments with their budget, training runs (created with
suggested assignments, updated with ``MERGE``) and the best runs. Suggestions are
random draws in each parameter's bounds from a seeded generator, so a test sees a
reproducible sequence. Point the client at it with the environment from :meth:`env`.

Torch-free: only the standard library.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CLIENT = "1"


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LocalSigOptServer:
    """SigOpt's API on ``http://127.0.0.1:<port>``; use as a context manager.

    Attributes:
        token: The API token the server accepts.
        projects: Project id -> project JSON (``projects`` given at start exist).
        experiments: AI Experiment id -> its JSON as created.
        runs: Training run id -> its JSON (assignments, values, state).
        requests: ``(method, path)`` of every request, in order.
    """

    def __init__(
        self, *, token: str = "local-token", projects: tuple[str, ...] = (), seed: int = 0
    ) -> None:
        self.token = token
        self.projects: dict[str, dict[str, Any]] = {}
        for project in projects:
            self._add_project(project, project)
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """The API root to give the client (``SIGOPT_API_URL``)."""
        if self._httpd is None:
            raise RuntimeError("LocalSigOptServer is not started: use it as a context manager.")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The environment variables that point the ``sigopt`` client here."""
        return {"SIGOPT_API_URL": self.url, "SIGOPT_API_TOKEN": self.token}

    def point_client(self) -> None:
        """Point the installed ``sigopt`` client at this server, even when it already
        made its process-wide connection (to an earlier server). Set the environment
        from :meth:`env` first (a fresh connection reads its token there). Needs the
        ``sigopt`` package."""
        from sigopt.interface import get_connection

        connection = get_connection()
        connection.set_api_url(self.url)
        connection.set_client_token(self.token)

    def __enter__(self) -> LocalSigOptServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        httpd = self._httpd
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.05), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    # ------------------------------------------------------------- routing
    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """Answer one request: ``(status, JSON body or None)``."""
        with self._lock:
            self.requests.append((method, path))
            for pattern, verb, action in self._routes():
                match = re.fullmatch(pattern, path)
                if match and verb == method:
                    return action(body, *match.groups())
        raise _ApiError(404, f"No route for {method} {path}")

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]]]]:
        return [
            (r"/v1/tokens/self", "GET", self._token),
            (r"/v1/clients/([^/]+)/projects", "POST", self._create_project),
            (r"/v1/clients/([^/]+)/projects/([^/]+)", "GET", self._fetch_project),
            (r"/v1/clients/([^/]+)/projects/([^/]+)/aiexperiments", "POST", self._create_exp),
            (r"/v1/aiexperiments/([^/]+)", "GET", self._fetch_experiment),
            (r"/v1/aiexperiments/([^/]+)/training_runs", "POST", self._create_run),
            (r"/v1/aiexperiments/([^/]+)/best_training_runs", "GET", self._best_runs),
            (r"/v1/training_runs/([^/]+)", "GET", self._fetch_run),
            (r"/v1/training_runs/([^/]+)", "MERGE", self._merge_run),
        ]

    # ------------------------------------------------------------ resources
    def _token(self, body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"object": "token", "client": _CLIENT, "token": self.token, "user": "1"}

    def _add_project(self, project_id: str, name: str) -> dict[str, Any]:
        project = {"object": "project", "id": project_id, "name": name, "client": _CLIENT}
        self.projects[project_id] = project
        return project

    def _create_project(self, body: dict[str, Any], client: str) -> tuple[int, Any]:
        if body.get("id") in self.projects:
            raise _ApiError(409, f"Project {body.get('id')} already exists")
        return 201, self._add_project(body["id"], body.get("name") or body["id"])

    def _fetch_project(self, body: dict[str, Any], client: str, project: str) -> tuple[int, Any]:
        if project not in self.projects:
            raise _ApiError(404, f"Project {project} not found")
        return 200, self.projects[project]

    def _create_exp(self, body: dict[str, Any], client: str, project: str) -> tuple[int, Any]:
        if project not in self.projects:
            raise _ApiError(404, f"Project {project} not found")
        experiment_id = str(len(self.experiments) + 1)
        experiment = {
            **body,
            "object": "aiexperiment",
            "id": experiment_id,
            "client": client,
            "project": project,
            "state": "active",
        }
        self.experiments[experiment_id] = experiment
        return 201, self._with_progress(experiment)

    def _experiment(self, experiment_id: str) -> dict[str, Any]:
        if experiment_id not in self.experiments:
            raise _ApiError(404, f"AI Experiment {experiment_id} not found")
        return self.experiments[experiment_id]

    def _runs_of(self, experiment_id: str) -> list[dict[str, Any]]:
        return [run for run in self.runs.values() if run["experiment"] == experiment_id]

    def _with_progress(self, experiment: dict[str, Any]) -> dict[str, Any]:
        runs = self._runs_of(experiment["id"])
        finished = sum(run["state"] in ("completed", "failed") for run in runs)
        budget = experiment.get("budget")
        progress = {
            "object": "progress",
            "total_run_count": len(runs),
            "finished_run_count": finished,
            "active_run_count": len(runs) - finished,
            "remaining_budget": None if budget is None else budget - finished,
        }
        return {**experiment, "progress": progress}

    def _fetch_experiment(self, body: dict[str, Any], experiment_id: str) -> tuple[int, Any]:
        return 200, self._with_progress(self._experiment(experiment_id))

    def _create_run(self, body: dict[str, Any], experiment_id: str) -> tuple[int, Any]:
        experiment = self._experiment(experiment_id)
        run_id = str(len(self.runs) + 1)
        run = {
            "object": "training_run",
            "id": run_id,
            "name": body.get("name"),
            "experiment": experiment_id,
            "project": experiment["project"],
            "client": experiment["client"],
            "assignments": {p["name"]: self._suggest(p) for p in experiment["parameters"]},
            "values": {},
            "state": "active",
        }
        self.runs[run_id] = run
        return 201, run

    def _suggest(self, parameter: dict[str, Any]) -> Any:
        kind = parameter["type"]
        if kind == "categorical":
            values = parameter["categorical_values"]
            chosen = self._random.choice(values)
            return chosen["name"] if isinstance(chosen, dict) else chosen
        low, high = parameter["bounds"]["min"], parameter["bounds"]["max"]
        if kind == "int":
            return self._random.randint(int(low), int(high))
        if parameter.get("transformation") == "log":
            return math.exp(self._random.uniform(math.log(low), math.log(high)))
        return self._random.uniform(low, high)

    def _run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.runs:
            raise _ApiError(404, f"Training run {run_id} not found")
        return self.runs[run_id]

    def _fetch_run(self, body: dict[str, Any], run_id: str) -> tuple[int, Any]:
        return 200, self._run(run_id)

    def _merge_run(self, body: dict[str, Any], run_id: str) -> tuple[int, Any]:
        run = self._run(run_id)
        for key, value in body.items():
            if isinstance(value, dict) and isinstance(run.get(key), dict):
                run[key] = {**run[key], **value}
            else:
                run[key] = value
        return 200, run

    def _best_runs(self, body: dict[str, Any], experiment_id: str) -> tuple[int, Any]:
        experiment = self._experiment(experiment_id)
        metric = experiment["metrics"][0]
        name, sign = metric["name"], -1 if metric.get("objective") == "minimize" else 1
        scored = [
            run
            for run in self._runs_of(experiment_id)
            if run["state"] == "completed" and name in run["values"]
        ]
        best = max(scored, key=lambda run: sign * run["values"][name]["value"], default=None)
        data = [] if best is None else [_with_metric_names(best)]
        paging = {"before": None, "after": None}
        return 200, {"object": "pagination", "count": len(data), "data": data, "paging": paging}


def _with_metric_names(run: dict[str, Any]) -> dict[str, Any]:
    values = {key: {"name": key, **value} for key, value in run["values"].items()}
    return {**run, "values": values}


def _check_auth(header: str | None, token: str) -> None:
    expected = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
    if header != expected:
        raise _ApiError(401, "Invalid API token")


def _handler_for(server: LocalSigOptServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            try:
                _check_auth(self.headers.get("Authorization"), server.token)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                status, payload = server.handle(self.command, self.path.split("?")[0], body)
            except _ApiError as error:
                status, payload = error.status, {"message": str(error), "status": error.status}
            if self.headers.get("X-Response-Content") == "skip" and status < 300:
                status, payload = 204, None
            self._send(status, payload)

        def _send(self, status: int, payload: Any) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_MERGE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return Handler
