import pytest
import torch
from pydantic import ValidationError

from eigml.model.iega import CosineHead, IEGAHead, MatchingConfig, build_matching_head

B, K, T, D, N = 2, 3, 5, 16, 6


def _dialogue(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return dict(intention=torch.randn(B, D, generator=g), emotion=torch.randn(B, D, generator=g),
                dialogue=torch.randn(B, D, generator=g), visual=torch.randn(B, K, D, generator=g))


def _head(**kwargs) -> IEGAHead:
    torch.manual_seed(0)
    head = build_matching_head(MatchingConfig(heads=4, hidden=32, **kwargs), D)
    assert isinstance(head, IEGAHead)
    return head.eval()


def test_shapes_and_padding_gets_zero_attention():
    head = _head()
    patches = torch.randn(B, K, T, D)
    mask = torch.zeros(B, K, T, dtype=torch.bool)
    mask[0, 1, 3:] = True
    mask[1, :, 0] = True
    queries = torch.randn(B, 2, D)
    attended, weights = head.attend(queries, patches, mask)
    assert attended.shape == (B, K, 2, D) and weights.shape == (B, K, 2, T)
    assert (weights[mask[:, :, None, :].expand_as(weights)] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, K, 2))
    # what sits under the padding cannot change the logits
    inputs = _dialogue()
    logits = head(**inputs, patches=patches, patch_mask=mask)
    noisy = patches.clone()
    noisy[mask] = 1e3 * torch.randn(int(mask.sum()), D)
    assert logits.shape == (B, K)
    torch.testing.assert_close(head(**inputs, patches=noisy, patch_mask=mask), logits)


def test_each_dialogue_attends_with_its_own_queries():
    head = _head()
    patches = torch.randn(B, K, T, D)
    queries = torch.randn(B, 2, D)
    attended, _ = head.attend(queries, patches)
    for b in range(B):
        for k in range(K):
            single, _ = head.attention(queries[b:b + 1], patches[b, k:k + 1], patches[b, k:k + 1])
            torch.testing.assert_close(attended[b, k], single[0])


def test_shared_bank_equals_materialised_candidates():
    head = _head()
    bank = torch.randn(N, T, D)
    bank_mask = torch.zeros(N, T, dtype=torch.bool)
    bank_mask[2, 4:] = True
    bank_mask[5, :2] = True
    candidates = torch.tensor([[2, 0, 2], [5, 2, 1]])  # repeats across and within dialogues
    inputs = _dialogue(1)
    fast = head(**inputs, patches=bank, patch_mask=bank_mask, candidates=candidates)
    slow = head(**inputs, patches=bank[candidates], patch_mask=bank_mask[candidates])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    queries = torch.randn(B, 2, D)
    _, w_fast = head.attend(queries, bank, bank_mask, candidates)
    _, w_slow = head.attend(queries, bank[candidates], bank_mask[candidates])
    torch.testing.assert_close(w_fast, w_slow, rtol=1e-5, atol=1e-6)


def test_gradients_reach_queries_patches_and_weights_in_training():
    head = _head()
    head.train()
    inputs = {name: value.requires_grad_(True) for name, value in _dialogue().items()}
    bank = torch.randn(N, T, D, requires_grad=True)
    logits = head(**inputs, patches=bank, candidates=torch.tensor([[0, 1, 2], [3, 4, 5]]))
    logits.sum().backward()
    assert all(value.grad is not None and value.grad.abs().sum() > 0 for value in inputs.values())
    assert bank.grad.abs().sum() > 0
    assert head.attention.in_proj_weight.grad.abs().sum() > 0


def test_cosine_variant_owns_no_attention_and_scores_by_cosine():
    head = build_matching_head(MatchingConfig(kind="cosine"), D)
    assert isinstance(head, CosineHead)
    assert sorted(name for name, _ in head.named_parameters()) == ["bias", "log_scale"]
    inputs = _dialogue()
    logits = head(**inputs)  # no patches needed
    expected = 10.0 * torch.nn.functional.cosine_similarity(inputs["dialogue"][:, None], inputs["visual"], dim=-1)
    torch.testing.assert_close(logits, expected)


def test_config_rejects_unknown_kind_and_bad_heads():
    with pytest.raises(ValidationError):
        MatchingConfig(kind="bilinear")
    with pytest.raises(ValueError):
        IEGAHead(MatchingConfig(heads=3), D)
    with pytest.raises(ValueError):
        _head()(**_dialogue())


def _training_mode_logits(head: IEGAHead, inputs: dict, **kwargs) -> torch.Tensor:
    """The training-mode computation (key/value projections per sticker, one fused concatenation) with
    dropout off: what the eval-mode shortcuts must equal."""
    for module in head.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    head.attention.dropout = 0.0
    head.train()
    try:
        return head(**inputs, **kwargs)
    finally:
        head.eval()


@pytest.mark.parametrize("interactions", [True, False])
def test_eval_shortcuts_equal_the_training_computation(interactions):
    """Patch-space attention and the split fusion give the logits the plain computation gives, with
    non-trivial LayerNorm affine terms, padding, biases and repeated candidates."""
    head = _head(interactions=interactions, dropout=0.0)
    with torch.no_grad():
        norm = head.fusion[0]
        norm.weight.copy_(1 + 0.5 * torch.randn_like(norm.weight))
        norm.bias.copy_(0.3 * torch.randn_like(norm.bias))
        head.attention.in_proj_bias.copy_(0.2 * torch.randn_like(head.attention.in_proj_bias))
    bank = 2 * torch.randn(N, T, D) + 0.5
    bank_mask = torch.zeros(N, T, dtype=torch.bool)
    bank_mask[3, 2:] = True
    candidates = torch.tensor([[2, 3, 3], [5, 0, 3]])
    inputs = _dialogue(2)
    with torch.no_grad():
        fast = head(**inputs, patches=bank, patch_mask=bank_mask, candidates=candidates)
        slow = _training_mode_logits(head, inputs, patches=bank, patch_mask=bank_mask, candidates=candidates)
        queries = torch.randn(B, 2, D)
        _, w_fast = head.attend(queries, bank, bank_mask, candidates)
        _, w_slow = head._attend_bank(queries, bank, bank_mask, candidates)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w_fast, w_slow, rtol=1e-5, atol=1e-6)
    assert (w_fast[0, 1, :, 2:] == 0).all() and (w_fast[1, 2, :, 2:] == 0).all()  # sticker 3's padding


@pytest.mark.parametrize("interactions", [False, True])
def test_served_fusion_keeps_its_weight_matrices_only_while_the_weights_stay(interactions):
    """Under inference mode (serving) the split fusion keeps what it derives from the weights; a weight
    changed in place (an optimizer step, a reload into the same tensors) must not be served stale."""
    head = _head(interactions=interactions, dropout=0.0)
    bank = torch.randn(N, T, D)
    candidates = torch.tensor([[2, 3, 1], [5, 0, 3]])
    inputs = _dialogue(2)
    with torch.inference_mode():
        before = head(**inputs, patches=bank, candidates=candidates)
        assert torch.equal(head(**inputs, patches=bank, candidates=candidates), before)  # from the kept matrices
    for name in ("0.weight", "0.bias", "1.weight", "1.bias"):
        with torch.no_grad():
            head.fusion.get_parameter(name).add_(0.1)
        with torch.inference_mode():
            served = head(**inputs, patches=bank, candidates=candidates)
        with torch.no_grad():
            slow = _training_mode_logits(head, inputs, patches=bank, patch_mask=None, candidates=candidates)
        assert not torch.allclose(served, before), name
        torch.testing.assert_close(served, slow, rtol=1e-4, atol=1e-5)
        before = served
