"""Cue text to RoBERTa token ids, as HERO's ``roberta_tokenize`` made them.

HERO unescapes HTML entities, lower-cases all-caps cues, and tokenizes with RoBERTa's byte-level
BPE without special tokens (the model adds ``<s>``/``</s>`` itself). :class:`CueTokenizer`
does the same with the ``tokenizers`` library, loading either a ``tokenizer.json`` or RoBERTa's
``vocab.json`` + ``merges.txt``, and records a sha256 of the files for the dataset manifest.

TV subtitles (TVQA / TVR's ``tv_subtitles.jsonl``) name the speaker in the text, ``" Chase :
That's all this is?"``, and HERO tokenized that whole string (its ``transformers`` 2.0.0
tokenizer stripped the leading space first). The readers move the speaker to
:attr:`~hero_data.types.Cue.speaker`; a tokenizer with ``speaker_prefix=True`` puts it back,
tokenizing :func:`cue_text`'s ``"Chase : That's all this is?"``, so the ids are HERO's. The
HTML and all-caps rules then apply to the whole string, as in HERO (``"Chase : NO"`` keeps its
capitals; ``"NO"`` alone is lower-cased).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from hero_data.errors import HeroError
from hero_data.types import Cue

PathLike = str | os.PathLike[str]

TOKENIZER_JSON = "tokenizer.json"
VOCAB_JSON = "vocab.json"
MERGES_TXT = "merges.txt"

# RoBERTa's special tokens, in its vocabulary order.
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

# Role -> token, as RoBERTa assigns them (sep is eos, cls is bos).
_ROLES = {
    "bos": "<s>",
    "eos": "</s>",
    "sep": "</s>",
    "cls": "<s>",
    "pad": "<pad>",
    "mask": "<mask>",
    "unk": "<unk>",
}


class TokenizerError(HeroError, ValueError):
    """A tokenizer file is missing, unreadable or ill-formed; the message names the path."""


SPEAKER_SEPARATOR = " : "
"""Between a speaker and the text in TV subtitles (TVR's ``"Name : text"``)."""


def cue_text(cue: Cue, *, speaker_prefix: bool = False) -> str:
    """The text tokenized for ``cue``: its text, or ``"Speaker : text"`` with
    ``speaker_prefix`` when it has a speaker (HERO's TV subtitle strings)."""
    if speaker_prefix and cue.speaker:
        return f"{cue.speaker}{SPEAKER_SEPARATOR}{cue.text}"
    return cue.text


def prepare_text(text: str) -> str:
    """HERO's cue preprocessing: unescape HTML entities, then lower-case all-caps text.

    The order matters: ``"NO &amp; WAY"`` is all caps only once unescaped.
    """
    text = html.unescape(text)
    return text.lower() if text.isupper() else text


class CueTokenizer:
    """A ``tokenizers.Tokenizer`` that encodes cue text the way HERO did.

    Build one with :meth:`from_path`. Padding and truncation settings stored in a
    ``tokenizer.json`` are switched off: a cue's ids are never cut or padded here.
    ``speaker_prefix``: :meth:`encode_cues` tokenizes ``"Speaker : text"`` for cues with a
    speaker (:func:`cue_text`; HERO's TV subtitles), else the text alone.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        kind: str,
        paths: Sequence[Path],
        sha256: str,
        speaker_prefix: bool = False,
    ):
        """Wrap ``tokenizer``; ``kind``, ``paths`` and ``sha256`` describe where it came from."""
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._kind = kind
        self._paths = tuple(paths)
        self._sha256 = sha256
        self._speaker_prefix = bool(speaker_prefix)

    def with_speaker_prefix(self, on: bool) -> CueTokenizer:
        """The same tokenizer with :attr:`speaker_prefix` set to ``on``."""
        return CueTokenizer(
            self._tokenizer,
            kind=self._kind,
            paths=self._paths,
            sha256=self._sha256,
            speaker_prefix=on,
        )

    @property
    def speaker_prefix(self) -> bool:
        """Whether :meth:`encode_cues` puts a cue's speaker before its text."""
        return self._speaker_prefix

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_path(
        cls, path: PathLike | tuple[PathLike, PathLike], *, speaker_prefix: bool = False
    ) -> CueTokenizer:
        """Load from a ``tokenizer.json`` file, a folder, or a ``(vocab.json, merges.txt)`` pair.

        A folder must hold ``tokenizer.json`` (preferred when both are there) or ``vocab.json``
        and ``merges.txt``. Raises :class:`TokenizerError` for anything missing or ill-formed.
        ``speaker_prefix``: see the class.
        """
        loaded = cls._load(path)
        return loaded.with_speaker_prefix(True) if speaker_prefix else loaded

    @classmethod
    def _load(cls, path: PathLike | tuple[PathLike, PathLike]) -> CueTokenizer:
        if isinstance(path, (tuple, list)):
            if len(path) != 2:
                raise TokenizerError(
                    f"expected a (vocab.json, merges.txt) pair of paths, got {len(path)} paths"
                )
            return cls._from_vocab_merges(Path(path[0]), Path(path[1]))
        path = Path(path)
        if path.is_dir():
            if (path / TOKENIZER_JSON).is_file():
                return cls._from_tokenizer_json(path / TOKENIZER_JSON)
            vocab, merges = path / VOCAB_JSON, path / MERGES_TXT
            if vocab.is_file() and merges.is_file():
                return cls._from_vocab_merges(vocab, merges)
            if vocab.is_file() or merges.is_file():
                have, lack = (vocab, merges) if vocab.is_file() else (merges, vocab)
                raise TokenizerError(f"{path}: folder has {have.name} but no {lack.name}")
            raise TokenizerError(
                f"{path}: folder holds neither {TOKENIZER_JSON} nor {VOCAB_JSON} + {MERGES_TXT}"
            )
        if not path.exists():
            raise TokenizerError(f"{path}: no such file or folder")
        if path.name in (VOCAB_JSON, MERGES_TXT):
            raise TokenizerError(
                f"{path}: a {path.name} alone is not a tokenizer; pass its folder or the "
                f"({VOCAB_JSON}, {MERGES_TXT}) pair"
            )
        return cls._from_tokenizer_json(path)

    @classmethod
    def _from_tokenizer_json(cls, path: Path) -> CueTokenizer:
        data = _read_bytes(path)
        try:
            tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise TokenizerError(f"{path}: not UTF-8 text ({e})") from None
        except Exception as e:  # tokenizers raises bare Exception for any parse error
            raise TokenizerError(f"{path}: not a valid tokenizer.json ({e})") from None
        return cls(
            tokenizer,
            kind="tokenizer.json",
            paths=(path,),
            sha256=hashlib.sha256(data).hexdigest(),
        )

    @classmethod
    def _from_vocab_merges(cls, vocab_path: Path, merges_path: Path) -> CueTokenizer:
        vocab_bytes, merges_bytes = _read_bytes(vocab_path), _read_bytes(merges_path)
        vocab = _check_vocab(vocab_path, vocab_bytes)
        _check_merges(merges_path, merges_bytes)
        try:
            model = models.BPE.from_file(str(vocab_path), str(merges_path))
        except Exception as e:  # e.g. a merge naming a token the vocab lacks
            raise TokenizerError(
                f"{vocab_path} + {merges_path}: not a valid BPE vocab/merges pair ({e})"
            ) from None
        # As HF's RoBERTa conversion: byte-level pre-tokenizer without a prefix space.
        tokenizer = Tokenizer(model)
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        # Specials match as whole tokens in text, as RoBERTa's; <mask> swallows the space
        # before it (RoBERTa's lstrip=True).
        tokenizer.add_special_tokens(
            [
                AddedToken(token, lstrip=token == "<mask>", special=True)
                for token in SPECIAL_TOKENS
                if token in vocab
            ]
        )
        digests = hashlib.sha256(vocab_bytes).hexdigest() + hashlib.sha256(merges_bytes).hexdigest()
        return cls(
            tokenizer,
            kind="vocab.json+merges.txt",
            paths=(vocab_path, merges_path),
            sha256=hashlib.sha256(digests.encode("ascii")).hexdigest(),
        )

    # -- encoding ----------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` after :func:`prepare_text`, without special tokens."""
        prepared = prepare_text(text)
        try:
            return self._tokenizer.encode(prepared, add_special_tokens=False).ids
        except TypeError:  # tokenizers' message for a lone surrogate does not say so
            raise _bad_text([prepared]) from None

    def encode_cues(self, cues: Iterable[Cue]) -> list[list[int]]:
        """:meth:`encode` of each cue's :func:`cue_text` (``"Speaker : text"`` with
        :attr:`speaker_prefix`), in one batch call; an empty text gives ``[]``."""
        texts = [prepare_text(cue_text(cue, speaker_prefix=self._speaker_prefix)) for cue in cues]
        try:
            encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        except TypeError:
            raise _bad_text(texts) from None
        return [encoding.ids for encoding in encodings]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` (for inspection; byte-level BPE round-trips text exactly)."""
        return self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    # -- description -------------------------------------------------------------------------

    def special_ids(self) -> dict[str, int | None]:
        """Ids of bos, eos, sep, cls, pad, mask and unk (RoBERTa's tokens); None if absent."""
        return {role: self._tokenizer.token_to_id(token) for role, token in _ROLES.items()}

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def sha256(self) -> str:
        """Hex sha256 of the loaded file; for a vocab/merges pair, of their two hex digests."""
        return self._sha256

    @property
    def paths(self) -> tuple[Path, ...]:
        """The file(s) it was loaded from."""
        return self._paths

    def describe(self) -> dict[str, Any]:
        """JSON-able record for the dataset manifest: kind, paths, sha256, vocab_size, and
        ``speaker_prefix: true`` when set (absent otherwise, so older records still match)."""
        out: dict[str, Any] = {
            "kind": self._kind,
            "paths": [str(p) for p in self._paths],
            "sha256": self._sha256,
            "vocab_size": self.vocab_size,
        }
        if self._speaker_prefix:
            out["speaker_prefix"] = True
        return out

    def __repr__(self) -> str:
        paths = ", ".join(str(p) for p in self._paths)
        extra = ", speaker_prefix" if self._speaker_prefix else ""
        return f"CueTokenizer({self._kind}: {paths}, vocab_size={self.vocab_size}{extra})"


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TokenizerError(f"{path}: no such file") from None
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read ({e.strerror or e})") from None


def _check_vocab(path: Path, data: bytes) -> dict[str, int]:
    """The vocab as a dict, or :class:`TokenizerError` saying why it is not one."""
    try:
        vocab = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path}: not UTF-8 text ({e})") from None
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path}: not JSON ({e})") from None
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerError(f"{path}: expected a non-empty JSON object of token -> id")
    for token, index in vocab.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise TokenizerError(f"{path}: token {token!r} has id {index!r}, not an int >= 0")
    return vocab


def _check_merges(path: Path, data: bytes) -> None:
    """Raise :class:`TokenizerError` unless each line is ``#version…`` or two tokens."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path}: not UTF-8 text ({e})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    # As tokenizers reads it: lines split on "\n" only, a trailing "\r" dropped.
    for number, line in enumerate((line.removesuffix("\r") for line in lines), start=1):
        if line.startswith("#version"):
            continue
        if len(line.split(" ")) != 2:
            raise TokenizerError(f"{path}: line {number} is not two space-separated tokens")


def _bad_text(texts: Sequence[str]) -> ValueError:
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return ValueError(f"cue text {text!r} is not valid Unicode (lone surrogate?)")
    return ValueError("tokenizers refused the cue text")


def train_byte_level_bpe(
    texts: Iterable[str], path: str | os.PathLike[str], vocab_size: int = 1000
) -> Path:
    """Train a RoBERTa-style byte-level BPE on ``texts`` and save it as ``tokenizer.json``.

    For corpora without a pretrained tokenizer at hand, and for the demo and tests (no
    download). Texts get HERO's preprocessing first; the five RoBERTa special tokens come first
    in the vocabulary (``<s>`` = 0, ``<pad>`` = 1, ``</s>`` = 2, ``<unk>`` = 3, ``<mask>`` = 4).
    """
    from tokenizers import trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((prepare_text(t) for t in texts), trainer=trainer)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out))
    return out
