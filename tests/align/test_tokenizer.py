"""align.tokenizer: HERO's cue preprocessing, both load paths, and errors naming the file.

The tokenizer is trained here on a few dozen sentences (byte-level BPE with RoBERTa's special
tokens), saved as tokenizer.json and as vocab.json + merges.txt; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from align.readers import read_tvqa_jsonl
from align.tokenizer import SPECIAL_TOKENS, CueTokenizer, TokenizerError, cue_text, prepare_text
from hero_data.types import Cue
from tests.conftest import TV_SUBS, TV_TOKENS_WITH_SPEAKER, TV_TOKENS_WITHOUT_SPEAKER, hand_bpe

SENTENCES = [
    "hello there, how are you doing today?",
    "I am fine, thank you very much.",
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "What time is it? It is half past nine.",
    "Let's go to the market and buy some fish & chips.",
    "Do you remember where we parked the car?",
    "No, I thought you remembered it!",
    "Turn left at the next light, then go straight.",
    'He said "don\'t worry" and walked away.',
    "We need three eggs, two cups of flour and some milk.",
    "The weather is lovely this morning.",
    "Are you coming to the party tonight?",
    "Maybe, if I finish my work on time.",
    "Please close the door behind you.",
    "My phone number is 555-0199.",
    "Where did you put the keys?",
    "They are on the kitchen table, next to the bread.",
    "I can't believe it's already December.",
    "Time flies when you're having fun.",
    "hello again, old friend",
    "Thank you for coming, everyone.",
    "The train leaves at 7:45 sharp.",
    "Don't forget to call your mother.",
    "Who is there? Hello? Is anybody there?",
    "This is the best pizza I have ever eaten.",
    "Can you hear me now? Good.",
    "We should get going before it gets dark.",
    "The meeting was moved to Thursday afternoon.",
    "Everything is going to be all right.",
    "HELLO THERE, GENERAL KENOBI!",
    "WATCH OUT FOR THAT TREE!",
]

SPECIAL_IDS = {"bos": 0, "eos": 2, "sep": 2, "cls": 0, "pad": 1, "mask": 4, "unk": 3}

# Plain ASCII without "<", so random text never spells a special token.
ASCII_TEXT = st.text(alphabet=string.printable.replace("<", ""), max_size=60)
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trained byte-level BPE saved both ways: {'json': tokenizer.json, 'bpe': folder}."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(SENTENCES, trainer=trainer)
    # As RoBERTa's tokenizer.json: plain encode() would wrap the ids in <s> ... </s>.
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    root = tmp_path_factory.mktemp("tok")
    (root / "json").mkdir()
    (root / "bpe").mkdir()
    tokenizer.save(str(root / "json" / "tokenizer.json"))
    tokenizer.model.save(str(root / "bpe"))
    return {"json": root / "json" / "tokenizer.json", "bpe": root / "bpe"}


@pytest.fixture(scope="module")
def tok_json(saved: dict[str, Path]) -> CueTokenizer:
    return CueTokenizer.from_path(saved["json"])


@pytest.fixture(scope="module")
def tok_bpe(saved: dict[str, Path]) -> CueTokenizer:
    return CueTokenizer.from_path(saved["bpe"])


# -- loading -------------------------------------------------------------------------------


def test_saved_files_are_the_expected_formats(saved):
    assert sorted(p.name for p in saved["bpe"].iterdir()) == ["merges.txt", "vocab.json"]
    vocab = json.loads((saved["bpe"] / "vocab.json").read_text(encoding="utf-8"))
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]


def test_all_load_routes_agree(saved, tok_json, tok_bpe):
    folder_json = CueTokenizer.from_path(saved["json"].parent)
    pair = CueTokenizer.from_path((saved["bpe"] / "vocab.json", saved["bpe"] / "merges.txt"))
    assert tok_json.vocab_size == tok_bpe.vocab_size == folder_json.vocab_size == pair.vocab_size
    for text in [*SENTENCES, "unseen words: zyxt qwop!", "naïve café — 日本語 🎉", ""]:
        ids = tok_json.encode(text)
        assert tok_bpe.encode(text) == ids
        assert folder_json.encode(text) == ids
        assert pair.encode(text) == ids


def test_folder_with_both_formats_prefers_tokenizer_json(saved, tmp_path):
    shutil.copy(saved["json"], tmp_path / "tokenizer.json")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(saved["bpe"] / name, tmp_path / name)
    assert CueTokenizer.from_path(tmp_path).describe()["kind"] == "tokenizer.json"


def test_describe_and_sha256(saved, tok_json, tok_bpe):
    assert tok_json.sha256 == hashlib.sha256(saved["json"].read_bytes()).hexdigest()
    assert tok_json.describe() == {
        "kind": "tokenizer.json",
        "paths": [str(saved["json"])],
        "sha256": tok_json.sha256,
        "vocab_size": tok_json.vocab_size,
    }
    described = tok_bpe.describe()
    assert described["kind"] == "vocab.json+merges.txt"
    assert described["paths"] == [
        str(saved["bpe"] / "vocab.json"),
        str(saved["bpe"] / "merges.txt"),
    ]
    digests = "".join(
        hashlib.sha256((saved["bpe"] / name).read_bytes()).hexdigest()
        for name in ("vocab.json", "merges.txt")
    )
    assert tok_bpe.sha256 == hashlib.sha256(digests.encode()).hexdigest()
    assert json.loads(json.dumps(described)) == described
    assert 256 + len(SPECIAL_TOKENS) < tok_bpe.vocab_size <= 500


def test_sha256_changes_with_the_merges(saved, tmp_path, tok_bpe):
    shutil.copy(saved["bpe"] / "vocab.json", tmp_path / "vocab.json")
    merges = (saved["bpe"] / "merges.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "merges.txt").write_text("\n".join(merges[:-1]) + "\n", encoding="utf-8")
    assert CueTokenizer.from_path(tmp_path).sha256 != tok_bpe.sha256


def test_tokenizer_json_truncation_and_padding_are_ignored(saved, tmp_path, tok_json):
    tokenizer = Tokenizer.from_file(str(saved["json"]))
    tokenizer.enable_truncation(max_length=2)
    tokenizer.enable_padding(length=64)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    text = SENTENCES[2]
    assert CueTokenizer.from_path(tmp_path).encode(text) == tok_json.encode(text)
    assert len(tok_json.encode(text)) > 2


# -- HERO's preprocessing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("HELLO THERE", "hello there"),
        ("Hello There", "Hello There"),
        ("HELLO there", "HELLO there"),
        ("fish &amp; chips", "fish & chips"),
        ("NO &amp; WAY", "no & way"),  # all caps only once unescaped
        ("&quot;OK&quot; 42!", '"ok" 42!'),
        ("123 ...", "123 ..."),  # no cased letters: not upper
        ("", ""),
    ],
)
def test_prepare_text(raw, prepared):
    assert prepare_text(raw) == prepared


@pytest.mark.parametrize("kind", ["json", "bpe"])
def test_preprocessing_applies_before_encoding(kind, tok_json, tok_bpe):
    tok = tok_json if kind == "json" else tok_bpe
    assert tok.encode("HELLO THERE") == tok.encode("hello there")
    assert tok.encode("Hello There") != tok.encode("hello there")
    assert tok.encode("HELLO there") != tok.encode("hello there")
    assert tok.encode("fish &amp; chips") == tok.encode("fish & chips")
    assert tok.encode("fish &amp; chips") != tok._tokenizer.encode("fish &amp; chips").ids
    assert tok.encode("NO &amp; WAY") == tok.encode("no & way")


def test_no_special_tokens_are_added(saved, tok_json, tok_bpe):
    raw = Tokenizer.from_file(str(saved["json"]))
    specials = set(SPECIAL_IDS.values())
    for text in SENTENCES:
        with_specials = raw.encode(prepare_text(text)).ids
        assert with_specials[0] == 0 and with_specials[-1] == 2  # what we must not get
        assert tok_json.encode(text) == with_specials[1:-1]
        assert not specials & set(tok_json.encode(text))
        assert not specials & set(tok_bpe.encode(text))


def test_special_token_text_maps_to_its_id(tok_json, tok_bpe):
    for tok in (tok_json, tok_bpe):
        ids = tok.encode("<s>hello</s>")
        assert ids[0] == 0 and ids[-1] == 2
        assert ids[1:-1] == tok.encode("hello")
    # RoBERTa's <mask> takes the space before it; a trained tokenizer.json's may not.
    assert tok_bpe.encode("hello <mask>") == [*tok_bpe.encode("hello"), 4]


def test_special_ids_are_the_vocabs(tok_json, tok_bpe):
    assert tok_json.special_ids() == SPECIAL_IDS
    assert tok_bpe.special_ids() == SPECIAL_IDS


def test_special_ids_missing_from_the_vocab_are_none(tmp_path):
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)} | {"</s>": len(alphabet)}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tok = CueTokenizer.from_path(tmp_path)
    eos = len(alphabet)
    assert tok.special_ids() == dict.fromkeys(SPECIAL_IDS, None) | {"eos": eos, "sep": eos}
    assert tok.vocab_size == 257
    assert tok.encode("hi") == [vocab["h"], vocab["i"]]  # no merges: one id per byte


@pytest.mark.parametrize("kind", ["json", "bpe"])
def test_round_trip_decode(kind, tok_json, tok_bpe):
    tok = tok_json if kind == "json" else tok_bpe
    for text in [*SENTENCES, "fish &amp; chips", "  two  spaces ", "tab\tand\nnewline"]:
        assert tok.decode(tok.encode(text)) == prepare_text(text)


@settings(max_examples=200, deadline=None)
@given(text=ASCII_TEXT)
def test_round_trip_decode_property(tok_json, text):
    assert tok_json.decode(tok_json.encode(text)) == prepare_text(text)


# -- batches ---------------------------------------------------------------------------------


def test_encode_cues_equals_encode(tok_json, tok_bpe):
    cues = [Cue(i, i + 1, t, "Ann" if i % 2 else None) for i, t in enumerate(SENTENCES)]
    cues += [Cue(99, 99, ""), Cue(100, 101, "HELLO &amp; BYE")]
    for tok in (tok_json, tok_bpe):
        batch = tok.encode_cues(cues)
        assert batch == [tok.encode(c.text) for c in cues]
        assert batch[-2] == []
    assert tok_json.encode_cues([]) == []
    assert tok_json.encode_cues(iter(cues[:3])) == [tok_json.encode(c.text) for c in cues[:3]]


@settings(max_examples=200, deadline=None)
@given(text=ANY_TEXT)
def test_encode_cues_single_equals_encode_property(tok_json, text):
    assert tok_json.encode_cues([Cue(0, 1, text)])[0] == tok_json.encode(text)


@settings(max_examples=50, deadline=None)
@given(texts=st.lists(ANY_TEXT, max_size=8))
def test_encode_cues_batch_equals_encode_property(tok_bpe, texts):
    cues = [Cue(i, i + 1, t) for i, t in enumerate(texts)]
    assert tok_bpe.encode_cues(cues) == [tok_bpe.encode(t) for t in texts]


def test_lone_surrogate_is_a_value_error(tok_json):
    with pytest.raises(ValueError, match="not valid Unicode"):
        tok_json.encode("a\ud800b")
    with pytest.raises(ValueError, match="not valid Unicode"):
        tok_json.encode_cues([Cue(0, 1, "fine"), Cue(1, 2, "a\ud800b")])


# -- errors ----------------------------------------------------------------------------------


def _error_for(path) -> str:
    with pytest.raises(TokenizerError) as info:
        CueTokenizer.from_path(path)
    return str(info.value)


def test_missing_paths(tmp_path):
    assert str(tmp_path / "nope.json") in _error_for(tmp_path / "nope.json")
    assert str(tmp_path / "nope") in _error_for(tmp_path / "nope")
    pair = (tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert str(pair[0]) in _error_for(pair)


def test_folder_with_neither_format(tmp_path):
    (tmp_path / "README").write_text("nothing here")
    message = _error_for(tmp_path)
    assert str(tmp_path) in message and "neither" in message


def test_folder_with_half_a_pair(saved, tmp_path):
    shutil.copy(saved["bpe"] / "vocab.json", tmp_path / "vocab.json")
    message = _error_for(tmp_path)
    assert str(tmp_path) in message and "merges.txt" in message


def test_lone_vocab_file(saved):
    message = _error_for(saved["bpe"] / "vocab.json")
    assert str(saved["bpe"] / "vocab.json") in message and "pair" in message


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2, 3]", b'{"model": 3}', b"\xff\xfe garbage", b""],
    ids=["syntax", "list", "no-model", "not-utf8", "empty"],
)
def test_corrupt_tokenizer_json(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(content)
    assert str(path) in _error_for(path)
    assert str(path) in _error_for(tmp_path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"this is not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "JSON object"),
        (b'{"a": "zero"}', "not an int"),
        (b'{"a": -1}', "not an int"),
    ],
)
def test_bad_vocab_json(saved, tmp_path, content, why):
    (tmp_path / "vocab.json").write_bytes(content)
    shutil.copy(saved["bpe"] / "merges.txt", tmp_path / "merges.txt")
    message = _error_for(tmp_path)
    assert str(tmp_path / "vocab.json") in message and why in message


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("#version: 0.2\nh e\nonlyone\n", "line 3"),
        ("a b c\n", "line 1"),
        ("h e\n\nt h\n", "line 2"),
    ],
)
def test_bad_merges_txt(saved, tmp_path, content, why):
    shutil.copy(saved["bpe"] / "vocab.json", tmp_path / "vocab.json")
    (tmp_path / "merges.txt").write_text(content, encoding="utf-8")
    message = _error_for(tmp_path)
    assert str(tmp_path / "merges.txt") in message and why in message


def test_merge_of_unknown_tokens(saved, tmp_path):
    shutil.copy(saved["bpe"] / "vocab.json", tmp_path / "vocab.json")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nzzqq yyxx\n", encoding="utf-8")
    message = _error_for(tmp_path)
    assert str(tmp_path / "merges.txt") in message and "zzqq" in message


def test_merges_with_crlf_line_ends_load(saved, tmp_path, tok_bpe):
    shutil.copy(saved["bpe"] / "vocab.json", tmp_path / "vocab.json")
    merges = (saved["bpe"] / "merges.txt").read_text(encoding="utf-8")
    (tmp_path / "merges.txt").write_bytes(merges.replace("\n", "\r\n").encode("utf-8"))
    tok = CueTokenizer.from_path(tmp_path)
    assert [tok.encode(t) for t in SENTENCES] == [tok_bpe.encode(t) for t in SENTENCES]


def test_unreadable_file(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.mkdir()  # a folder where a file should be: reading it fails
    (path / "x").write_text("")
    message = _error_for((path, tmp_path / "merges.txt"))
    assert str(path) in message


def test_wrong_pair_length(saved):
    with pytest.raises(TokenizerError, match="pair"):
        CueTokenizer.from_path((saved["json"],))  # type: ignore[arg-type]


# --- TV subtitles: HERO's "Name : text" ---------------------------------------------------------


def test_cue_text_puts_the_speaker_back_as_tv_subtitles_write_it():
    cue = Cue(0.0, 1.0, "That's all this is?", "Chase")
    assert cue_text(cue) == "That's all this is?"
    assert cue_text(cue, speaker_prefix=True) == "Chase : That's all this is?"
    assert cue_text(Cue(0.0, 1.0, "Okay.", None), speaker_prefix=True) == "Okay."


def test_tv_subtitles_get_heros_token_ids(tmp_path):
    vocab = hand_bpe(tmp_path / "bpe")
    line = {
        "vid_name": "house_s01",
        "sub": [{"text": t, "start": s, "end": e} for t, s, e in TV_SUBS],
    }
    (tmp_path / "tv.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    cues = read_tvqa_jsonl(tmp_path / "tv.jsonl")["house_s01"]
    assert [(c.speaker, c.text) for c in cues] == [
        ("Chase", "That's all this is?"), ("House", "NO"), (None, "Okay."), ("MAN", "HEY YOU")
    ]  # fmt: skip
    tok = CueTokenizer.from_path(tmp_path / "bpe", speaker_prefix=True)
    assert tok.speaker_prefix and tok.describe()["speaker_prefix"] is True
    with_speaker = [[vocab[t] for t in cue] for cue in TV_TOKENS_WITH_SPEAKER]
    assert tok.encode_cues(cues) == with_speaker
    # HERO: html.unescape, lower-case if all caps, then transformers 2.0.0 stripped the text
    assert [tok.encode(text.strip()) for text, _, _ in TV_SUBS] == with_speaker
    plain = tok.with_speaker_prefix(False)
    assert "speaker_prefix" not in plain.describe()
    assert plain.encode_cues(cues) == [[vocab[t] for t in cue] for cue in TV_TOKENS_WITHOUT_SPEAKER]
    assert CueTokenizer.from_path(tmp_path / "bpe").encode_cues(cues) == plain.encode_cues(cues)
