"""Subword tokenizers through Hugging Face `tokenizers`: bpe trained on the training text only
(once, cached), pretrained from a tokenizer.json or its directory, kept in the typed state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kubetrain.api.preprocessing import TextPreprocessing
from kubetrain.data.text import cached_bpe, cached_tokens, write_tokenizer_file
from kubetrain.errors import InvalidJob
from kubetrain.preprocessing.state import TextState, state_from_dict
from kubetrain.preprocessing.tokenizer import Tokenizer, pieces, read_tokenizer_file

TRAIN = "the cat sat on the mat. the dog sat on the log.\n" * 200
HELD_OUT = "zyxwvqzyxwvq " * 200  # a word the training text never has


def _bpe(vocab: int = 300) -> Tokenizer:
    return Tokenizer.fit("bpe", TRAIN, TRAIN + HELD_OUT, vocab_size=vocab)


def test_bpe_is_trained_on_the_training_text_only_and_round_trips() -> None:
    tok = _bpe()
    vocab = tok.hf.get_vocab()
    assert tok.vocab_size <= 300
    assert any("sat" in t for t in vocab)  # merges of the training text
    assert not any("zyx" in t for t in vocab)  # nothing of the held-out text
    for text in (TRAIN[:500], HELD_OUT[:100], "ünïcödé ✓ and a\nnew line"):
        ids = tok.encode(text)
        assert ids.dtype == np.uint16 and tok.decode(ids.tolist()) == text
    # A word of the training text is a few tokens; the held-out word is spelled out in bytes.
    assert len(tok.encode(" sat")) == 1 and len(tok.encode(" zyxwvq")) > 3


def test_bpe_training_is_deterministic_and_cached(tmp_path: Path) -> None:
    assert _bpe().hf_json == _bpe().hf_json
    a = cached_bpe(TRAIN, 300, tmp_path)
    files = list(tmp_path.glob("tokenizer-*.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    b = cached_bpe(TRAIN, 300, tmp_path)
    assert a == b and files[0].stat().st_mtime_ns == stamp  # read back, not trained again
    cached_bpe(TRAIN, 320, tmp_path)
    assert len(list(tmp_path.glob("tokenizer-*.json"))) == 2  # another size: another entry


def test_long_text_is_encoded_in_pieces_cut_after_new_lines() -> None:
    text = "line of text\n" * 20_000
    parts = list(pieces(text, 1000))
    assert "".join(parts) == text and all(p.endswith("\n") for p in parts)
    tok = _bpe()
    ids = tok.encode(text)
    assert tok.decode(ids.tolist()) == text


def test_the_state_keeps_the_whole_tokenizer(tmp_path: Path) -> None:
    tok = _bpe()
    state = TextState(tok)
    again = state_from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert isinstance(again, TextState)
    assert again.tokenizer.encode(TRAIN[:200]).tolist() == tok.encode(TRAIN[:200]).tolist()
    path = write_tokenizer_file(tmp_path, tok)
    assert path is not None and path.read_text() == tok.hf_json
    assert write_tokenizer_file(tmp_path, Tokenizer("char", "ab")) is None


def test_pretrained_from_a_file_or_a_directory(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text(_bpe().hf_json)
    from_dir = read_tokenizer_file(tmp_path)
    from_file = read_tokenizer_file(tmp_path / "tokenizer.json")
    assert from_dir == from_file
    tok = Tokenizer.fit("pretrained", "", "", hf_json=from_file)
    assert tok.decode(tok.encode("the mat").tolist()) == "the mat"


@pytest.mark.parametrize("content", ["{not json", '{"model": {"type": "Nope"}}', "[]"])
def test_a_tokenizer_file_that_does_not_parse_is_one_line(tmp_path: Path, content: str) -> None:
    f = tmp_path / "tok.json"
    f.write_text(content)
    with pytest.raises(InvalidJob, match=r"tok.json: not a tokenizer.json") as e:
        read_tokenizer_file(f)
    assert "\n" not in str(e.value)
    with pytest.raises(InvalidJob, match=r"no tokenizer.json"):
        read_tokenizer_file(tmp_path / "missing")


def test_a_damaged_state_is_refused() -> None:
    with pytest.raises(InvalidJob):
        state_from_dict({"kind": "text", "tokenizer": {"kind": "bpe", "tokenizerJson": "{"}})
    with pytest.raises(InvalidJob):
        state_from_dict({"kind": "text", "tokenizer": {"kind": "wordpiece"}})


def test_token_cache_keeps_wide_ids(tmp_path: Path) -> None:
    class Wide(Tokenizer):
        @property
        def vocab_size(self) -> int:
            return 100_000

        def encode(self, text: str) -> np.ndarray:
            return np.array([70_000, 1, 99_999], dtype=np.uint32)

    ids = cached_tokens("abc", Wide("byte"), tmp_path)
    assert ids.dtype == np.uint32 and ids.tolist() == [70_000, 1, 99_999]


def test_spec_rules() -> None:
    TextPreprocessing.model_validate({"tokenizer": "bpe", "vocabSize": 1000})
    TextPreprocessing.model_validate({"tokenizer": "pretrained", "tokenizerPath": "t.json"})
    for bad, field in (({"tokenizer": "pretrained"}, "tokenizerPath"),
                       ({"tokenizer": "char", "vocabSize": 1000}, "vocabSize"),
                       ({"tokenizer": "bpe", "tokenizerPath": "x"}, "tokenizerPath"),
                       ({"tokenizer": "bpe", "vocabSize": 100}, "vocabSize")):
        with pytest.raises(ValueError, match=field):
            TextPreprocessing.model_validate(bad)
