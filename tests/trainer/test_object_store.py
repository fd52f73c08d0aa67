"""Object storage against a real S3 server (MinIO on loopback) and a real HTTP server: data read
from s3:// and http(s)://, checkpoints published to a bucket with the manifest last, the errors a
user can fix in one line (exit 2), and kill -9 mid-upload → an exact resume that never reads a
partial checkpoint.

MinIO comes from $KUBETRAIN_MINIO or hack/minio/build.sh: when neither works these tests fail
(with the build's output), they are never skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from trainer_cli import final_params, kubetrain, losses, write_job
from trainer_jobs import job_dict

from kubetrain.data.uri import local_path
from kubetrain.errors import InvalidJob
from kubetrain.storage.remote import filesystem
from kubetrain.trainer.checkpoint import Checkpointer, read_part, verify
from kubetrain.trainer.distributed import DistContext
from kubetrain.trainer.loop import LoopState
from kubetrain_testenv.object_store import S3Server, http_server, minio_server

BUCKET = "kubetrain"
CORPUS = Path("/work/shared/data/tinyshakespeare/input.txt")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with minio_server(tmp_path_factory.mktemp("minio")) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """This process reads the server's credentials from the environment, as the trainer does."""
    for k, v in s3.env(KUBETRAIN_DATA_CACHE=str(tmp_path / "data-cache")).items():
        monkeypatch.setenv(k, v)
    return s3


def _put(url: str, data: bytes) -> None:
    filesystem(url).pipe_file(url, data)


def _text(n: int = 200_000) -> bytes:
    """Text that is the same on every machine: the start of Tiny Shakespeare when present,
    else a generated one."""
    if CORPUS.is_file():
        return CORPUS.read_bytes()[:n]
    words = [b"to", b"be", b"or", b"not", b"that", b"is", b"the", b"question"]
    return b" ".join(words[(i * 7 + i // 3) % len(words)] for i in range(n // 4))[:n]


# -- data -------------------------------------------------------------------------------------
def test_reads_a_file_and_a_prefix_from_s3_and_refreshes_a_changed_object(
        s3_env: S3Server) -> None:
    _put(f"s3://{BUCKET}/data/a.csv", b"x,y\n1,2\n")
    _put(f"s3://{BUCKET}/data/dir/b.txt", b"hello ")
    _put(f"s3://{BUCKET}/data/dir/sub/c.txt", b"world")
    got = local_path(f"s3://{BUCKET}/data/a.csv")
    assert got.read_bytes() == b"x,y\n1,2\n"
    tree = local_path(f"s3://{BUCKET}/data/dir/")
    assert (tree / "b.txt").read_bytes() == b"hello "
    assert (tree / "sub" / "c.txt").read_bytes() == b"world"
    _put(f"s3://{BUCKET}/data/a.csv", b"x,y\n3,4\n5,6\n")  # changed: fetched again
    assert local_path(f"s3://{BUCKET}/data/a.csv").read_bytes() == b"x,y\n3,4\n5,6\n"


def test_reads_over_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETRAIN_DATA_CACHE", str(tmp_path / "cache"))
    served = tmp_path / "www"
    served.mkdir()
    (served / "corpus.txt").write_bytes(b"some text to train on\n" * 100)
    with http_server(served, tmp_path / "http.log") as base:
        got = local_path(f"{base}/corpus.txt")
        assert got.read_bytes() == (served / "corpus.txt").read_bytes()
        with pytest.raises(InvalidJob, match=r"corpus2.txt: no such object$"):
            local_path(f"{base}/corpus2.txt")


@pytest.mark.parametrize("url,message", [
    ("s3://no-such-bucket/x.txt", "bucket 'no-such-bucket' does not exist"),
    (f"s3://{BUCKET}/missing/x.txt", "no such object"),
])
def test_a_missing_bucket_or_object_is_one_line(s3_env: S3Server, url: str,
                                                message: str) -> None:
    with pytest.raises(InvalidJob) as e:
        local_path(url)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_hf_model_directory_in_a_bucket_loads(s3_env: S3Server, tmp_path: Path) -> None:
    """model.hf.path may name a bucket prefix that save_pretrained's files were uploaded to."""
    import transformers
    from hf_models import write_tiny_llama

    from kubetrain.models.hf_source import model_dir

    local = write_tiny_llama(tmp_path / "tiny")
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
        _put(f"s3://{BUCKET}/models/tiny/{f.relative_to(local)}", f.read_bytes())
    got = model_dir(f"s3://{BUCKET}/models/tiny/", None)
    assert got != local and (got / "config.json").is_file()
    model = transformers.AutoModelForCausalLM.from_pretrained(got)
    want = transformers.AutoModelForCausalLM.from_pretrained(local)
    for (name, a), (_, b) in zip(model.state_dict().items(), want.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(InvalidJob, match="no such object"):
        model_dir(f"s3://{BUCKET}/models/absent/", None)
    with pytest.raises(InvalidJob, match="must be local, s3:// or gs://"):
        model_dir("https://example.invalid/models/tiny/", None)


def test_wrong_credentials_are_access_denied(s3_env: S3Server,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _put(f"s3://{BUCKET}/data/secret.txt", b"x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(InvalidJob, match="access denied") as e:
        local_path(f"s3://{BUCKET}/data/secret.txt")
    assert "\n" not in str(e.value)


# -- checkpoints in a bucket, in process ------------------------------------------------------
class Weights:
    def __init__(self, value: float):
        self.w = torch.full((1000,), value)

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = state["w"]


def _save(c: Checkpointer, step: int) -> str:
    return str(c.save(step, main={"model.pt": Weights(float(step)),
                                  "loop.pt": LoopState(step=step)}))


def test_checkpoints_in_a_bucket_publish_prune_and_skip_the_damaged(
        s3_env: S3Server, capsys: pytest.CaptureFixture[str]) -> None:
    root = f"s3://{BUCKET}/ckpt-unit"
    c = Checkpointer(root, keep_last=2, ctx=DistContext())
    for step in (10, 20, 30):
        _save(c, step)
    assert c.complete() == [f"{root}/step-00000020", f"{root}/step-00000030"]  # pruned
    fs = filesystem(root)
    fs.invalidate_cache()
    assert not fs.exists(f"{root}/step-00000010/model.pt")  # pruned objects are gone

    # An upload cut short (parts, no manifest) is not a checkpoint, and is never read.
    _put(f"{root}/step-00000040/model.pt", b"half a checkpoint")
    assert c.complete()[-1] == f"{root}/step-00000030"
    assert c.resume_point("auto") == f"{root}/step-00000030"
    assert read_part(f"{root}/step-00000030", "model.pt")["w"][0] == 30.0

    # A part that no longer matches the manifest: skipped with a warning, the older one taken.
    _put(f"{root}/step-00000030/model.pt", b"garbage")
    assert verify(f"{root}/step-00000030") == "model.pt is missing or truncated"
    assert c.resume_point("auto") == f"{root}/step-00000020"
    assert "skipping checkpoint s3://kubetrain/ckpt-unit/step-00000030" in capsys.readouterr().err
    weights = Weights(0.0)
    c.load(f"{root}/step-00000020", main={"model.pt": weights})
    assert weights.w[0] == 20.0

    # The next save prunes the partial prefix and the older ones.
    _save(c, 50)
    fs.invalidate_cache()
    assert not fs.exists(f"{root}/step-00000040/model.pt")
    assert c.complete() == [f"{root}/step-00000030", f"{root}/step-00000050"]


def test_a_checkpoint_bucket_that_does_not_exist_fails_at_start(s3_env: S3Server) -> None:
    with pytest.raises(InvalidJob, match=r"spec.checkpoint.path: .*bucket 'nope' does not exist"):
        Checkpointer("s3://nope/ckpt", keep_last=2, ctx=DistContext())


# -- training with data and checkpoints in the bucket -----------------------------------------
STEPS, EVERY = 60, 20


def _job(work: Path, name: str, data: str, ckpt: str) -> Path:
    spec = {
        "dataset": {"type": "text", "text": {"path": data}, "split": {"val": 0.1}},
        "preprocessing": {"text": {"tokenizer": "char", "packing": True}},
        "model": {"type": "gpt", "gpt": {"layers": 2, "heads": 2, "width": 32, "context": 32},
                  "dropout": 0.1},
        "optimizer": {"type": "adamw", "lr": 0.003},
        "training": {"maxSteps": STEPS, "globalBatchSize": 8, "microBatchSize": 4,
                     "logging": {"everySteps": 1}},
        "checkpoint": {"path": ckpt, "everySteps": EVERY, "keepLast": 2},
    }
    return write_job(work / f"{name}.yaml", job_dict(spec, name=name))


def test_kill9_mid_upload_then_resume_is_exact(s3: S3Server, tmp_path: Path) -> None:
    data = f"s3://{BUCKET}/corpus/shakespeare.txt"
    env = s3.env(KUBETRAIN_DATA_CACHE=str(tmp_path / "data-cache"))
    os.environ.update(env)  # for _put and the listing below (restored at the end)
    try:
        _put(data, _text())
        ref_job = _job(tmp_path, "ref", data, f"s3://{BUCKET}/runs/ref")
        r = kubetrain("run", ref_job, "--procs", "2", "--run-dir", tmp_path / "ref",
                      "--no-progress", **env)
        assert r.returncode == 0, r.stderr
        assert not (tmp_path / "ref" / "checkpoints").exists()  # the run dir holds no checkpoint

        ckpt = f"s3://{BUCKET}/runs/killed"
        job = _job(tmp_path, "killed", data, ckpt)
        run_dir = tmp_path / "killed"
        # Rank 0 kills itself (SIGKILL) while uploading step 40's optimizer state.
        r = kubetrain("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress",
                      KUBETRAIN_TEST_KILL_DURING_UPLOAD="step-00000040/optim.pt", **env)
        assert r.returncode != 0, r.stderr
        fs = filesystem(ckpt)
        fs.invalidate_cache()
        left = sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"{ckpt}/step-00000040"))
        assert "model.pt" in left and "manifest.json" not in left and "optim.pt" not in left, left
        assert max(losses(run_dir)) >= 2 * EVERY

        r = kubetrain("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress", **env)
        assert r.returncode == 0, r.stderr
        assert f"resuming from {ckpt}/step-00000020" in r.stderr  # never the partial step 40
        a, b = losses(run_dir), losses(tmp_path / "ref")
        assert sorted(a) == sorted(b) and len(b) == STEPS
        for s in b:
            assert a[s] == b[s], f"step {s}: {a[s]} != {b[s]}"
        pa, pb = final_params(run_dir), final_params(tmp_path / "ref")
        assert all(torch.equal(pa[k], pb[k]) for k in pb)
        fs.invalidate_cache()
        manifest = json.loads(fs.cat_file(f"{ckpt}/step-00000060/manifest.json"))
        assert {"rank-0/rng.pt", "rank-1/rng.pt", "optim.pt"} <= set(manifest["files"])
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(ckpt, detail=False))
        assert names == ["step-00000040", "step-00000060"]  # keepLast 2, nothing partial left
    finally:
        for k in env:
            os.environ.pop(k, None)


def test_bad_buckets_exit_2_with_one_line(s3: S3Server, tmp_path: Path) -> None:
    env = s3.env(KUBETRAIN_DATA_CACHE=str(tmp_path / "data-cache"))
    job = _job(tmp_path, "nobucket", "s3://no-such-bucket/x.txt", str(tmp_path / "ckpt"))
    r = kubetrain("run", job, "--run-dir", tmp_path / "a", "--no-progress", **env)
    assert r.returncode == 2, r.stderr
    assert "s3://no-such-bucket/x.txt: bucket 'no-such-bucket' does not exist" in r.stderr
    job = _job(tmp_path, "denied", f"s3://{BUCKET}/corpus/x.txt", str(tmp_path / "ckpt"))
    r = kubetrain("run", job, "--run-dir", tmp_path / "b", "--no-progress",
                  **{**env, "AWS_SECRET_ACCESS_KEY": "wrong-secret"})
    assert r.returncode == 2, r.stderr
    assert "access denied" in r.stderr


@pytest.mark.parametrize("url", ["gs://bucket/ckpt", "https://example.com/ckpt"])
def test_checkpoints_are_written_to_s3_only(url: str) -> None:
    with pytest.raises(InvalidJob, match=r"spec.checkpoint.path: .*can be written to s3://"):
        Checkpointer(url, keep_last=2, ctx=DistContext())
