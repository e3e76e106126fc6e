"""What the local Hub stand-in keeps: users, repositories, their files, commits and LFS objects.

Kept apart from the HTTP layer (:mod:`trainer_testing.hub_server`) so that tests read
back what was pushed through plain attributes, without parsing HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any


class HubRefusal(Exception):
    """A request the Hub would refuse: the HTTP status, its message, error code and any
    further fields of the JSON answer (``errors`` for invalid metadata)."""

    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.details = details or {}


@dataclass
class HubCommit:
    """One commit: its message, the revision it went to and the paths it touched."""

    oid: str
    message: str
    revision: str
    added: list[str]
    deleted: list[str]


@dataclass
class HubRepo:
    """A model repository: visibility, owner and one file tree per revision."""

    repo_id: str
    private: bool
    owner: str
    revisions: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    lfs_paths: set[str] = field(default_factory=set)
    commits: list[HubCommit] = field(default_factory=list)

    @property
    def files(self) -> dict[str, bytes]:
        """The files on ``main``: path in the repository -> content."""
        return self.revisions["main"]

    def head(self) -> str:
        """The oid of the last commit (a fixed all-zero oid before the first)."""
        return self.commits[-1].oid if self.commits else "0" * 40


def git_blob_oid(content: bytes) -> str:
    """The git object id of a regular file, as the Hub reports it to clients."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubStore:
    """Thread-safe state of the stand-in Hub (the HTTP server serves requests in threads).

    ``tokens`` maps each valid token to its user; ``organizations`` are namespaces
    every valid user may write to. Files of at least ``lfs_threshold`` bytes, and weight
    files (as the Hub's default ``.gitattributes`` routes them), go through git-LFS.
    """

    LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")

    def __init__(
        self,
        tokens: dict[str, str],
        organizations: tuple[str, ...] = (),
        lfs_threshold: int = 10 * 1024 * 1024,
    ) -> None:
        self.tokens = dict(tokens)
        self.organizations = set(organizations)
        self.lfs_threshold = lfs_threshold
        self.repos: dict[str, HubRepo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.lock = threading.RLock()

    # --------------------------------------------------------------- identity
    def user_for(self, token: str | None) -> str | None:
        """The user of ``token``; ``None`` without one; a refusal for an unknown one."""
        if token is None:
            return None
        if token not in self.tokens:
            raise HubRefusal(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def require_writer(self, token: str | None, namespace: str) -> str:
        user = self.user_for(token)
        if user is None:
            raise HubRefusal(401, "You must be authenticated to write to the Hub")
        if namespace != user and namespace not in self.organizations:
            raise HubRefusal(403, f"You don't have the rights to write to '{namespace}'")
        return user

    # ------------------------------------------------------------ repositories
    def create_repo(self, token: str | None, name: str, organization: str | None, private: bool):
        user = self.user_for(token)
        if user is None:
            raise HubRefusal(401, "You must be authenticated to create a repository")
        namespace = organization or user
        self.require_writer(token, namespace)
        repo_id = f"{namespace}/{name}"
        with self.lock:
            if repo_id in self.repos:  # the Hub names the existing repository in its answer
                details = {"repo_id": repo_id}
                raise HubRefusal(409, "You already created this model repo", details=details)
            self.repos[repo_id] = HubRepo(repo_id=repo_id, private=private, owner=user)
        return self.repos[repo_id]

    def readable_repo(self, token: str | None, repo_id: str) -> HubRepo:
        user = self.user_for(token)
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and user != repo.owner):
            raise HubRefusal(404, "Repository not found", "RepoNotFound")
        return repo

    def writable_repo(self, token: str | None, repo_id: str) -> HubRepo:
        repo = self.readable_repo(token, repo_id)
        self.require_writer(token, repo_id.split("/", maxsplit=1)[0])
        return repo

    # ---------------------------------------------------------------- uploads
    def upload_mode(self, path: str, size: int) -> str:
        lfs = size >= self.lfs_threshold or path.endswith(self.LFS_SUFFIXES)
        return "lfs" if lfs and size > 0 else "regular"

    def remote_oid(self, repo: HubRepo, revision: str, path: str) -> str | None:
        content = repo.revisions.get(revision, {}).get(path)
        if content is None:
            return None
        if path in repo.lfs_paths:
            return hashlib.sha256(content).hexdigest()
        return git_blob_oid(content)

    def store_lfs_object(self, oid: str, content: bytes) -> None:
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubRefusal(400, "Uploaded content does not match its oid")
        with self.lock:
            self.lfs_objects[oid] = content

    # ---------------------------------------------------------------- commits
    def commit(self, repo: HubRepo, revision: str, lines: list[dict]) -> HubCommit:
        """Apply one ndjson commit payload (header, file, lfsFile, deletedFile/Folder)."""
        with self.lock:
            if revision not in repo.revisions:
                raise HubRefusal(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            tree = repo.revisions[revision]
            header, added, deleted = {}, [], []
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "header":
                    header = value
                elif key in ("file", "lfsFile"):
                    self._add(repo, tree, key, value)
                    added.append(value["path"])
                elif key in ("deletedFile", "deletedFolder"):
                    deleted.extend(self._delete(tree, value["path"], folder=key == "deletedFolder"))
                else:
                    raise HubRefusal(400, f"Unknown commit operation {key!r}")
            summary = header.get("summary", "")
            oid = hashlib.sha1(f"{repo.head()}{summary}{added}{deleted}".encode()).hexdigest()
            commit = HubCommit(oid, summary, revision, added, deleted)
            repo.commits.append(commit)
            return commit

    def _add(self, repo: HubRepo, tree: dict[str, bytes], key: str, value: dict) -> None:
        path = value["path"]
        if key == "file":
            tree[path] = base64.b64decode(value["content"])
            repo.lfs_paths.discard(path)
            return
        if value["oid"] not in self.lfs_objects:
            raise HubRefusal(422, f"LFS object {value['oid']} for '{path}' was never uploaded")
        tree[path] = self.lfs_objects[value["oid"]]
        repo.lfs_paths.add(path)

    @staticmethod
    def _delete(tree: dict[str, bytes], path: str, *, folder: bool) -> list[str]:
        prefix = path.rstrip("/") + "/"
        gone = [p for p in tree if (p.startswith(prefix) if folder else p == path)]
        for name in gone:
            del tree[name]
        return gone
