"""Where a Hugging Face model's files come from: a local directory (or volume), a bucket prefix
(s3://, gs://: copied once into the data cache), or hf://org/name through huggingface_hub's own
cache (HF_HUB_OFFLINE=1 reads only what is cached). The config of a model in a bucket is fetched
alone (`kubetrain validate` reads no weights); the whole prefix when the model is built."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from kubetrain.api.errors import suggest
from kubetrain.api.model import HFArgs
from kubetrain.errors import InvalidJob
from kubetrain.storage.fetch import fetch, verified
from kubetrain.storage.remote import is_remote, join, scheme_of

HF_PREFIX = "hf://"


def model_dir(path: str, base: Path | None, field: str = "model.hf.path") -> Path:
    """The local directory holding the files (config.json for a model)."""
    if path.startswith(HF_PREFIX):
        return _hub_snapshot(path[len(HF_PREFIX):], field)
    if is_remote(path):
        if scheme_of(path) in ("http", "https"):  # a web server lists no directory
            raise InvalidJob(f"{field} {path}: a model directory must be local, s3:// or gs://"
                             " (http(s):// names single files)")
        p = fetch(path)  # every object under the prefix; InvalidJob when missing or denied
        if not p.is_dir():
            raise InvalidJob(f"{field} {path}: an object, not a prefix holding a model")
        return p
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and base is not None:
        p = base / p
    if not p.is_dir():
        raise InvalidJob(f"{field} {path}: no such directory")
    return p


def _hub_snapshot(repo: str, field: str) -> Path:
    """huggingface_hub's snapshot of org/name[@revision]: from its cache, downloading only when
    the hub is reachable and HF_HUB_OFFLINE is not set."""
    from huggingface_hub import snapshot_download

    repo_id, _, revision = repo.partition("@")
    if repo_id.count("/") != 1:
        raise InvalidJob(f"{field} hf://{repo}: write hf://org/name (or hf://org/name@revision)")
    try:
        return Path(snapshot_download(repo_id, revision=revision or None))
    except Exception as e:  # offline and not cached, unknown repo, no network: one message
        raise InvalidJob(f"{field} hf://{repo}: not available ({type(e).__name__}); download it"
                         " once with network access (or set HF_HOME to a cache that has it)"
                         ) from None


def load_config(a: HFArgs, base: Path | None) -> Any:
    """The transformers config of hf.path, or the defaults of hf.architecture."""
    import transformers

    if a.path is None:
        known = sorted(transformers.CONFIG_MAPPING.keys())
        arch = a.architecture or ""
        if arch not in known:
            hint = suggest(arch, known)
            more = f"; did you mean {hint!r}?" if hint else " (e.g. llama, gpt2, qwen2)"
            raise InvalidJob(f"model.hf.architecture: unknown model type {arch!r}{more}")
        return transformers.AutoConfig.for_model(arch)
    where = _config_dir(a.path) if _in_bucket(a.path) else model_dir(a.path, base)
    return copy.deepcopy(_config_at(str(where), a.path))  # callers set fields on it


def _in_bucket(path: str) -> bool:
    return is_remote(path) and scheme_of(path) not in ("http", "https")


def _config_dir(path: str, field: str = "model.hf.path") -> Path:
    """A local directory holding the config.json of the bucket prefix `path`: the whole copy
    when this job has it already, else that one object (no weights downloaded)."""
    whole = verified(path)
    if whole is not None and whole.is_dir():
        return whole
    url = join(path, "config.json")
    try:
        return fetch(url).parent
    except InvalidJob as e:
        why = str(e).removeprefix(f"{url}: ")
        if why == "no such object":
            raise InvalidJob(f"{field} {path}: not a model directory (no config.json; a"
                             " directory written by save_pretrained has one)") from None
        raise InvalidJob(f"{field} {path}: {why}") from None


@functools.lru_cache(maxsize=8)
def _config_at(where: str, given: str) -> Any:
    import transformers

    if not (Path(where) / "config.json").is_file():
        raise InvalidJob(f"model.hf.path {given}: not a model directory (no config.json; a"
                         " directory written by save_pretrained has one)")
    try:
        return transformers.AutoConfig.from_pretrained(where)
    except Exception as e:  # a damaged or foreign config.json: whatever transformers raises
        raise InvalidJob(f"model.hf.path {given}: config.json cannot be read"
                         f" ({_first_line(e)})") from None


def load_tokenizer(where: str, base: Path | None, field: str) -> Any:
    return _tokenizer_at(str(model_dir(where, base, field)), where, field)


@functools.lru_cache(maxsize=8)
def _tokenizer_at(where: str, given: str, field: str) -> Any:
    import transformers

    d = Path(where)
    if not any((d / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json",
                                          "tokenizer.model", "vocab.json", "vocab.txt")):
        raise InvalidJob(f"{field} {given}: no tokenizer there (tokenizer.json or"
                         " tokenizer_config.json); name one with model.hf.tokenizer")
    try:
        return transformers.AutoTokenizer.from_pretrained(where)
    except Exception as e:  # damaged tokenizer files
        raise InvalidJob(f"{field} {given}: the tokenizer cannot be loaded"
                         f" ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
