"""How many requests kubetrain sends to a real S3 server (MinIO), counted by MinIO itself: its
audit log posts one JSON entry per S3 request to a webhook served here.

- A job lists a bucket location once, however many of its readers ask for it (a model's config,
  tokenizer and weights), and the next job lists it again: a changed object is downloaded then.
- `kubetrain validate` of a model in a bucket reads its config.json, never its weights.
"""

from __future__ import annotations

import collections
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hf_models import write_tiny_llama
from trainer_cli import kubetrain, write_job
from trainer_jobs import job_dict

from kubetrain.data.uri import local_path
from kubetrain.storage.fetch import one_job
from kubetrain.storage.remote import filesystem, head
from kubetrain_testenv.object_store import S3Server, minio_server
from kubetrain_testenv.procs import wait_for

BUCKET = "counted"
ROOT = Path(__file__).resolve().parents[2]
LISTING = {"HeadObject", "ListObjectsV2", "ListObjects"}  # what checks a location for changes


class Audit:
    """MinIO's audit entries, in the order the webhook received them."""

    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []
        self._lock = threading.Lock()
        audit = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with audit._lock:
                    audit.entries += [json.loads(line) for line in body.splitlines() if line]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def settings(self) -> dict[str, str]:
        port = self.server.server_address[1]
        return {"MINIO_AUDIT_WEBHOOK_ENABLE": "on",
                "MINIO_AUDIT_WEBHOOK_ENDPOINT": f"http://127.0.0.1:{port}/"}

    def take(self, under: str) -> collections.Counter[tuple[str, str]]:
        """(S3 API, object) → requests under the key prefix `under` since the last take.

        A HEAD of a fresh name is sent last, and the entries up to its own are taken: the
        webhook delivers in order, so nothing sent before it is still on its way."""
        marker = f"marker/{uuid.uuid4().hex}"
        with pytest.raises(FileNotFoundError):
            head(f"s3://{BUCKET}/{marker}")

        def arrived() -> bool:
            with self._lock:
                return any(_api(e)[1] == marker for e in self.entries)

        wait_for(arrived, 60, interval=0.05, what="MinIO's audit entry of the marker")
        with self._lock:
            upto = next(i for i, e in enumerate(self.entries) if _api(e)[1] == marker)
            taken, self.entries = self.entries[:upto], self.entries[upto + 1:]
        return collections.Counter(_api(e) for e in taken if _api(e)[1].startswith(under))


def _api(entry: dict[str, object]) -> tuple[str, str]:
    """(S3 API, the object, or for a listing the prefix it lists)."""
    api, query = entry.get("api"), entry.get("requestQuery") or {}
    assert isinstance(api, dict) and isinstance(query, dict), entry
    return str(api.get("name", "")), str(api.get("object") or query.get("prefix", ""))


def _listings(c: collections.Counter[tuple[str, str]]) -> int:
    return sum(n for (api, _), n in c.items() if api in LISTING)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, Audit]]:
    audit = Audit()
    try:
        with minio_server(tmp_path_factory.mktemp("minio"), settings=audit.settings()) as s3:
            s3.create_bucket(BUCKET)
            yield s3, audit
    finally:
        audit.server.shutdown()


@pytest.fixture
def s3_env(audited: tuple[S3Server, Audit], monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> dict[str, str]:
    """This process reads the server's credentials from the environment, as the trainer does."""
    env = audited[0].env(KUBETRAIN_DATA_CACHE=str(tmp_path / "data-cache"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def _put(url: str, data: bytes) -> None:
    filesystem(url).pipe_file(url, data)


def _upload_tiny_llama(tmp_path: Path, prefix: str) -> dict[str, int]:
    local = write_tiny_llama(tmp_path / "tiny")
    sizes = {}
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
        _put(f"s3://{BUCKET}/{prefix}/{f.relative_to(local)}", f.read_bytes())
        sizes[str(f.relative_to(local))] = f.stat().st_size
    return sizes


def test_a_job_lists_a_location_once_and_the_next_job_sees_a_change(
        audited: tuple[S3Server, Audit], s3_env: dict[str, str]) -> None:
    audit = audited[1]
    _put(f"s3://{BUCKET}/once/a.csv", b"x,y\n1,2\n")
    _put(f"s3://{BUCKET}/once/dir/b.txt", b"hello")
    _put(f"s3://{BUCKET}/once/dir/sub/c.txt", b"world")
    file_url, dir_url = f"s3://{BUCKET}/once/a.csv", f"s3://{BUCKET}/once/dir/"
    audit.take("once/")

    # Outside a job (a library caller) every call checks the store, as before.
    local_path(file_url)
    first = audit.take("once/")
    assert _listings(first) >= 1 and first[("GetObject", "once/a.csv")] == 1, first
    local_path(file_url)
    again = audit.take("once/")
    assert _listings(again) == _listings(first) and ("GetObject", "once/a.csv") not in again

    # In one job: the first call checks (and downloads), the next ones send nothing.
    with one_job():
        assert local_path(dir_url).joinpath("sub", "c.txt").read_bytes() == b"world"
        one = audit.take("once/")
        assert _listings(one) >= 1, one
        for _ in range(3):
            assert local_path(dir_url).joinpath("b.txt").read_bytes() == b"hello"
            assert local_path(file_url).read_bytes() == b"x,y\n1,2\n"
        repeated = audit.take("once/")
        # The file once (its first time in this job), the prefix not again.
        assert _listings(repeated) == _listings(first), repeated
        assert not any(obj.startswith("once/dir") for _, obj in repeated), repeated

        _put(f"s3://{BUCKET}/once/a.csv", b"x,y\n3,4\n")  # changed while the job runs
        assert local_path(file_url).read_bytes() == b"x,y\n1,2\n"  # the job's own copy
    audit.take("once/")

    with one_job():  # the next job checks again and downloads the changed object
        assert local_path(file_url).read_bytes() == b"x,y\n3,4\n"
        assert audit.take("once/")[("GetObject", "once/a.csv")] == 1


def test_an_hf_run_lists_its_model_prefix_once(audited: tuple[S3Server, Audit],
                                                s3_env: dict[str, str], tmp_path: Path) -> None:
    """`kubetrain run` reads the model's config, tokenizer and weights from one listing of the
    prefix (three readers; before, each listed it: 3 HEAD + 6 LIST)."""
    audit = audited[1]
    sizes = _upload_tiny_llama(tmp_path, "hfrun/tiny")
    data = f"s3://{BUCKET}/hfrun/instruct.jsonl"
    _put(data, (ROOT / "examples" / "data" / "instruct.jsonl").read_bytes())
    job = write_job(tmp_path / "hf.yaml", job_dict({
        "dataset": {"type": "instruct", "instruct": {"path": data, "maxLength": 32}},
        "model": {"type": "hf", "hf": {"path": f"s3://{BUCKET}/hfrun/tiny/"}},
        "training": {"maxSteps": 2, "globalBatchSize": 2}}, name="hfrun"))
    audit.take("hfrun/")
    r = kubetrain("run", job, "--run-dir", tmp_path / "run", "--no-progress", **s3_env)
    assert r.returncode == 0, r.stderr
    got = audit.take("hfrun/")
    model = {k: n for k, n in got.items() if k[0] in LISTING and k[1].startswith("hfrun/tiny")}
    assert sum(model.values()) == 3, got  # one check of the prefix: HEAD, then two LISTs
    assert got[("HeadObject", "hfrun/instruct.jsonl")] == 1, got
    for name in sizes:  # every file downloaded once
        assert got[("GetObject", f"hfrun/tiny/{name}")] == 1, (name, got)


def test_validate_reads_a_bucket_models_config_and_not_its_weights(
        audited: tuple[S3Server, Audit], s3_env: dict[str, str], tmp_path: Path) -> None:
    audit = audited[1]
    sizes = _upload_tiny_llama(tmp_path, "hfval/tiny")
    assert sizes["model.safetensors"] > 100_000  # the weights dwarf the config
    job = write_job(tmp_path / "hf.yaml", job_dict({
        "dataset": {"type": "instruct", "instruct": {"path": "data.jsonl", "maxLength": 32}},
        "model": {"type": "hf", "hf": {"path": f"s3://{BUCKET}/hfval/tiny/"}}}, name="hfval"))
    audit.take("hfval/")
    r = kubetrain("validate", job, **s3_env)
    assert r.returncode == 0, r.stderr
    got = audit.take("hfval/")
    assert {obj for (api, obj) in got if api == "GetObject"} == {"hfval/tiny/config.json"}, got
    assert "ListObjectsV2" not in {api for api, _ in got}, got
    # The config was read: the parameter count of the tiny Llama on the meta device.
    assert "parameters: " in r.stdout and "known once" not in r.stdout, r.stdout
    cache = Path(s3_env["KUBETRAIN_DATA_CACHE"])
    assert not any(p.name == "model.safetensors" for p in cache.rglob("*")), list(cache.rglob("*"))



@pytest.mark.parametrize("path,message", [
    (f"s3://{BUCKET}/absent/", f"model.hf.path s3://{BUCKET}/absent/: not a model directory"),
    ("s3://no-such-bucket/m/", "model.hf.path s3://no-such-bucket/m/: bucket 'no-such-bucket'"
                               " does not exist"),
])
def test_a_bucket_config_that_is_not_there_is_one_line(s3_env: dict[str, str], path: str,
                                                        message: str) -> None:
    from kubetrain.api.model import HFArgs
    from kubetrain.errors import InvalidJob
    from kubetrain.models.hf_source import load_config

    with pytest.raises(InvalidJob) as e:
        load_config(HFArgs(path=path), None)
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)
