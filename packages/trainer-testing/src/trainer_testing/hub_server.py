"""A local HTTP server that stands in for the Hugging Face Hub in tests.

The Hub cannot be reached from tests, and a mock of ``huggingface_hub`` would only test
our expectations of it. This server answers the HTTP requests the real client library
(huggingface_hub 2.x) sends for what the Trainer does, with the Hub's JSON shapes and
status codes, so the real client runs unchanged against it:

- ``POST /api/repos/create`` (name, organization, visibility), ``GET /api/models/<id>``,
  ``GET /api/whoami-v2``;
- ``POST /api/validate-yaml`` (the README.md front matter must parse);
- ``POST /api/models/<id>/preupload/<rev>`` (regular or LFS upload mode per file);
- git-LFS "basic" transfer: ``POST /<id>.git/info/lfs/objects/batch``, the ``PUT`` of the
  content, ``POST .../objects/verify``;
- ``POST /api/models/<id>/commit/<rev>`` (the ndjson commit payload).

The Xet transfer is not served: while active, the server tells huggingface_hub not to use
it (as ``HF_HUB_DISABLE_XET=1`` does), so large files take the git-LFS path. Tokens are
checked: an unknown one gets the Hub's 401. What is pushed is readable through
:attr:`LocalHubServer.repos` (``repos["user/name"].files["README.md"]``).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from trainer_testing._hub_store import HubCommit, HubRefusal, HubRepo, HubStore

__all__ = ["DEFAULT_HUB_TOKEN", "DEFAULT_HUB_USER", "HubCommit", "HubRepo", "LocalHubServer"]

DEFAULT_HUB_TOKEN = "hf_local_write_token"
DEFAULT_HUB_USER = "local-user"

_REPO = r"(?P<repo>[^/]+/[^/]+?)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/api/repos/create"), "_create_repo"),
    ("GET", re.compile(r"/api/whoami-v2"), "_whoami"),
    ("POST", re.compile(r"/api/validate-yaml"), "_validate_yaml"),
    ("GET", re.compile(rf"/api/models/{_REPO}(?:/revision/(?P<rev>.+))?"), "_repo_info"),
    ("POST", re.compile(rf"/api/models/{_REPO}/preupload/(?P<rev>.+)"), "_preupload"),
    ("POST", re.compile(rf"/api/models/{_REPO}/commit/(?P<rev>.+)"), "_commit"),
    ("POST", re.compile(rf"/{_REPO}\.git/info/lfs/objects/batch"), "_lfs_batch"),
    ("POST", re.compile(rf"/{_REPO}\.git/info/lfs/objects/verify"), "_lfs_verify"),
    ("PUT", re.compile(r"/lfs-upload/(?P<oid>[0-9a-f]{64})"), "_lfs_upload"),
]


class LocalHubServer:
    """The stand-in Hub, on ``127.0.0.1`` at a free port, serving from a daemon thread.

    Use it as a context manager: on entry it starts and points huggingface_hub at itself
    (``HF_ENDPOINT``, the client's endpoint constant, Xet off); on exit it restores them
    and stops. ``tokens`` maps valid tokens to users (default: one writer,
    :data:`DEFAULT_HUB_TOKEN` for :data:`DEFAULT_HUB_USER`).
    """

    def __init__(
        self,
        tokens: dict[str, str] | None = None,
        organizations: tuple[str, ...] = (),
        lfs_threshold: int = 10 * 1024 * 1024,
    ) -> None:
        tokens = tokens or {DEFAULT_HUB_TOKEN: DEFAULT_HUB_USER}
        self.store = HubStore(tokens, organizations, lfs_threshold)
        self.requests: list[tuple[str, str]] = []
        self._commit_gate = threading.Event()
        self._commit_gate.set()
        self._commits_waiting = threading.Semaphore(0)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._restore: list[Callable[[], None]] = []

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def repos(self) -> dict[str, HubRepo]:
        """Every repository created, by id (``"user/name"``)."""
        return self.store.repos

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalHubServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self._point_client_here()
        return self

    def __exit__(self, *exc: object) -> None:
        self._commit_gate.set()
        for restore in reversed(self._restore):
            restore()
        self._restore.clear()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _point_client_here(self) -> None:
        self._set_env("HF_ENDPOINT", self.url)
        self._set_env("HF_HUB_DISABLE_XET", "1")
        try:
            from huggingface_hub import constants
        except ImportError:  # the client reads the environment when it is imported later
            return
        self._set_attr(constants, "ENDPOINT", self.url)
        self._set_attr(constants, "HF_HUB_DISABLE_XET", True)

    def _set_env(self, name: str, value: str) -> None:
        old = os.environ.get(name)
        os.environ[name] = value
        self._restore.append(
            lambda: os.environ.pop(name, None) if old is None else os.environ.update({name: old})
        )

    def _set_attr(self, owner: Any, name: str, value: Any) -> None:
        old = getattr(owner, name)
        setattr(owner, name, value)
        self._restore.append(lambda: setattr(owner, name, old))

    # ------------------------------------------------------- test controls
    @contextmanager
    def hold_commits(self) -> Iterator[None]:
        """Keep commits waiting (uploads stay "in progress") until the block ends."""
        self._commit_gate.clear()
        try:
            yield
        finally:
            self._commit_gate.set()

    def wait_for_held_commit(self, timeout: float = 30.0) -> None:
        """Block until a commit request has arrived and is being held."""
        if not self._commits_waiting.acquire(timeout=timeout):
            raise TimeoutError("No commit reached the local Hub in time.")

    def commits(self, repo_id: str) -> list[HubCommit]:
        """The commits of ``repo_id``, oldest first."""
        return list(self.store.repos[repo_id].commits)

    # --------------------------------------------------------- endpoints
    def _create_repo(self, request: _Request) -> dict[str, Any]:
        body = request.json()
        if body.get("type", "model") != "model":
            raise HubRefusal(400, "Only model repositories are served here")
        private = body.get("visibility") == "private" or bool(body.get("private"))
        namespace = body.get("organization")
        try:
            repo = self.store.create_repo(request.token, body["name"], namespace, private)
        except HubRefusal as refusal:
            if "repo_id" in refusal.details:  # 409: the Hub still answers with the url
                refusal.details = {"url": f"{self.url}/{refusal.details['repo_id']}"}
            raise
        return {"url": f"{self.url}/{repo.repo_id}", "name": repo.repo_id, "id": repo.repo_id}

    def _whoami(self, request: _Request) -> dict[str, Any]:
        user = self.store.user_for(request.token)
        if user is None:
            raise HubRefusal(401, "Invalid credentials in Authorization header")
        orgs = [{"name": name} for name in sorted(self.store.organizations)]
        return {"type": "user", "name": user, "orgs": orgs}

    def _validate_yaml(self, request: _Request) -> dict[str, Any]:
        errors = _front_matter_errors(request.json().get("content", ""))
        if errors:
            details = {"errors": [{"message": error} for error in errors]}
            raise HubRefusal(400, "Invalid metadata in README.md", details=details)
        return {"errors": [], "warnings": []}

    def _repo_info(self, request: _Request) -> dict[str, Any]:
        repo = self.store.readable_repo(request.token, request.match["repo"])
        siblings = [{"rfilename": path} for path in sorted(repo.files)]
        return {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "private": repo.private,
            "sha": repo.head(),
            "siblings": siblings,
        }

    def _preupload(self, request: _Request) -> dict[str, Any]:
        repo = self.store.writable_repo(request.token, request.match["repo"])
        revision = unquote(request.match["rev"])
        files = [self._upload_plan(repo, revision, entry) for entry in request.json()["files"]]
        return {"files": files, "commitOid": repo.head()}

    def _upload_plan(self, repo: HubRepo, revision: str, entry: dict[str, Any]) -> dict[str, Any]:
        path = entry["path"]
        return {
            "path": path,
            "uploadMode": self.store.upload_mode(path, entry["size"]),
            "shouldIgnore": False,
            "oid": self.store.remote_oid(repo, revision, path),
        }

    def _commit(self, request: _Request) -> dict[str, Any]:
        repo = self.store.writable_repo(request.token, request.match["repo"])
        lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        if not self._commit_gate.is_set():
            self._commits_waiting.release()
            self._commit_gate.wait(timeout=60)
        commit = self.store.commit(repo, unquote(request.match["rev"]), lines)
        url = f"{self.url}/{repo.repo_id}/commit/{commit.oid}"
        return {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None}

    def _lfs_batch(self, request: _Request) -> dict[str, Any]:
        repo_id = request.match["repo"]
        self.store.writable_repo(request.token, repo_id)
        body = request.json()
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", ["basic"]):
            raise HubRefusal(400, "Only uploads through the basic transfer are served")
        objects = [self._lfs_object(repo_id, obj) for obj in body["objects"]]
        return {"transfer": "basic", "objects": objects}

    def _lfs_object(self, repo_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
        if obj["oid"] not in self.store.lfs_objects:  # present objects need no upload
            answer["actions"] = {
                "upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"},
                "verify": {"href": f"{self.url}/{repo_id}.git/info/lfs/objects/verify"},
            }
        return answer

    def _lfs_upload(self, request: _Request) -> dict[str, Any]:
        self.store.store_lfs_object(request.match["oid"], request.body)
        return {}

    def _lfs_verify(self, request: _Request) -> dict[str, Any]:
        self.store.writable_repo(request.token, request.match["repo"])
        body = request.json()
        content = self.store.lfs_objects.get(body["oid"])
        if content is None or len(content) != body["size"]:
            raise HubRefusal(404, f"LFS object {body['oid']} not found or of another size")
        return {"success": True}


def _front_matter_errors(content: str) -> list[str]:
    """What the Hub would reject in a README.md's YAML front matter (needs PyYAML to check)."""
    if not content.startswith("---\n"):
        return []
    end = content.find("\n---\n", 3)
    if end < 0:
        return ["The YAML front matter is not closed by a '---' line."]
    try:
        import yaml
    except ImportError:  # trainer-testing does not depend on PyYAML; check what it can
        return []
    try:
        metadata = yaml.safe_load(content[4:end])
    except yaml.YAMLError as error:
        return [f"Invalid YAML: {error}"]
    return [] if isinstance(metadata, dict) else ["The YAML front matter must be a mapping."]


class _Request:
    """One request as the endpoints see it: token, body and the route's named groups."""

    def __init__(self, handler: BaseHTTPRequestHandler, match: re.Match[str]) -> None:
        self.match = match
        auth = handler.headers.get("Authorization", "")
        self.token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        self.body = _read_body(handler)

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = handler.headers.get("Content-Length")
    if length is not None:
        return handler.rfile.read(int(length))
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return b""
    chunks = []
    while size := int(handler.rfile.readline().strip().split(b";")[0], 16):
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()
    handler.rfile.readline()
    return b"".join(chunks)


def _handler_for(server: LocalHubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def _dispatch(self, method: str) -> None:
            path = urlsplit(self.path).path
            server.requests.append((method, path))
            for route_method, pattern, endpoint in _ROUTES:
                match = pattern.fullmatch(path)
                if route_method == method and match:
                    return self._answer(getattr(server, endpoint), _Request(self, match))
            _read_body(self)
            self._send(404, {"error": f"No route for {method} {path}"}, None)

        def _answer(self, endpoint: Callable[[_Request], Any], request: _Request) -> None:
            try:
                self._send(200, endpoint(request), None)
            except HubRefusal as refusal:
                body = {"error": refusal.message, **refusal.details}
                self._send(refusal.status, body, refusal.error_code)

        def _send(self, status: int, body: Any, error_code: str | None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if error_code is not None:
                self.send_header("X-Error-Code", error_code)
            if status >= 400:
                self.send_header("X-Error-Message", body.get("error", "")[:200])
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read :attr:`LocalHubServer.requests` instead of stderr."""

    return Handler
