import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from eigml.model.samm import SAMM, SAMMConfig, emotion_intention_similarity

B, K, D = 3, 4, 8


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, K, generator=g) * 5, torch.randn(B, D, generator=g), torch.randn(B, D, generator=g),
            torch.randn(B, K, D, generator=g), torch.randn(B, K, D, generator=g))


def test_scores_are_in_unit_interval_even_for_extreme_inputs():
    samm = SAMM()
    p_vl, et, it, es, is_ = _inputs()
    for logits in (p_vl, torch.full((B, K), 1e4), torch.full((B, K), -1e4)):
        scores = samm(logits, et, it, es, is_)
        assert scores.shape == (B, K)
        assert (scores >= 1e-6).all() and (scores <= 1 - 1e-6).all()
        assert torch.isfinite(F.binary_cross_entropy(scores, torch.ones(B, K)))
    # identical emotion and intention vectors and a saturated matcher reach the top of the range
    top = samm(torch.full((B, K), 1e4), et, it, et[:, None].expand(B, K, D), it[:, None].expand(B, K, D))
    torch.testing.assert_close(top, torch.full((B, K), 1 - 1e-6))


def test_matches_the_formula():
    samm = SAMM(SAMMConfig(alpha=0.3, beta=0.8))
    p_vl, et, it, es, is_ = _inputs(1)
    b, k = 1, 2
    e_cos = F.cosine_similarity(et[b], es[b, k], dim=0)
    i_cos = F.cosine_similarity(it[b], is_[b, k], dim=0)
    s_ei = (1 + 0.3 * e_cos + 0.7 * i_cos) / 2
    expected = 0.8 * torch.sigmoid(p_vl[b, k]) + 0.2 * s_ei
    assert samm(p_vl, et, it, es, is_)[b, k].item() == pytest.approx(expected.item(), rel=1e-5)
    assert samm.alpha.item() == pytest.approx(0.3) and samm.beta.item() == pytest.approx(0.8)
    s = emotion_intention_similarity(et, it, es, is_, 0.3)
    assert (s >= 0).all() and (s <= 1).all()


def test_alpha_and_beta_receive_gradients():
    samm = SAMM()
    p_vl, et, it, es, is_ = _inputs(2)
    target = torch.zeros(B, K)
    target[:, 0] = 1
    F.binary_cross_entropy(samm(p_vl, et, it, es, is_), target).backward()
    assert samm.alpha_logit.grad is not None and samm.alpha_logit.grad != 0
    assert samm.beta_logit.grad is not None and samm.beta_logit.grad != 0


def test_a_fixed_beta_is_kept_and_saved_but_not_trained():
    samm = SAMM(SAMMConfig(beta=0.1, learn_beta=False))
    names = {name for name, _ in samm.named_parameters()}
    assert names == {"alpha_logit"}
    assert "beta_logit" in samm.state_dict()  # checkpoints keep it, so a served model mixes as trained
    p_vl, et, it, es, is_ = _inputs(3)
    target = torch.zeros(B, K)
    target[:, 0] = 1
    F.binary_cross_entropy(samm(p_vl, et, it, es, is_), target).backward()
    assert samm.beta.item() == pytest.approx(0.1)
    restored = SAMM(SAMMConfig(beta=0.5, learn_beta=False))
    restored.load_state_dict(samm.state_dict())
    assert restored.beta.item() == pytest.approx(0.1)


def test_disabled_is_sigmoid_and_owns_no_parameters():
    samm = SAMM(SAMMConfig(enabled=False))
    assert list(samm.parameters()) == []
    p_vl = _inputs()[0]
    torch.testing.assert_close(samm(p_vl), torch.sigmoid(p_vl))


def test_enabled_without_vectors_fails_and_bad_init_is_rejected():
    with pytest.raises(ValueError):
        SAMM()(torch.zeros(B, K))
    with pytest.raises(ValidationError):
        SAMMConfig(alpha=1.0)
