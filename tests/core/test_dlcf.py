import math

import pytest
import torch
import torch.nn.functional as F

from eigml.model.dlcf import DLCFConfig, DLCFLoss, Views, info_nce, same_id_positives, symmetric_kl


def naive_info_nce(q: torch.Tensor, k: torch.Tensor, tau: float) -> float:
    total = 0.0
    for i in range(q.shape[0]):
        qi = q[i] / q[i].norm()
        sims = [float(qi @ (k[j] / k[j].norm())) / tau for j in range(k.shape[0])]
        total += -sims[i] + math.log(sum(math.exp(s) for s in sims))
    return total / q.shape[0]


def test_info_nce_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(6, 5, generator=g), torch.randn(9, 5, generator=g)
    assert info_nce(q, k, 0.1).item() == pytest.approx(naive_info_nce(q, k, 0.1), rel=1e-5)


def test_identity_positives_equal_plain_info_nce():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    eye = torch.eye(5, dtype=torch.bool)
    assert info_nce(q, k, 0.2, eye).item() == pytest.approx(info_nce(q, k, 0.2).item(), rel=1e-6)


def test_multi_positive_matches_hand_computation():
    # unit vectors, so the similarities are easy to write down
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    positives = torch.tensor([[True, False, True], [False, True, False]])
    tau = 0.5
    # query 0: positives keys 0 and 2 (s = 2 each), one negative key 1 (s = 0)
    loss0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))
    # query 1: positive key 1 (s = 2), negatives keys 0 and 2 (s = 0 each)
    loss1 = -math.log(math.exp(2) / (math.exp(2) + 2 * math.exp(0)))
    expected = (loss0 + loss1) / 2
    assert info_nce(q, k, tau, positives).item() == pytest.approx(expected, rel=1e-6)


def test_duplicate_keys_are_not_negatives():
    # dialogues 0 and 2 share one answer sticker: for them the batch acts as if it held one copy
    g = torch.Generator().manual_seed(2)
    q, s = torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g)
    queries = torch.stack([q[0], q[1], q[0]])
    keys = torch.stack([s[0], s[1], s[0]])
    dup = info_nce(queries, keys, 0.1, same_id_positives(torch.tensor([7, 3, 7])))
    row0 = F.cross_entropy(F.normalize(q[:1], dim=-1) @ F.normalize(s, dim=-1).T / 0.1, torch.tensor([0]))
    # dialogue 1 still sees both copies of sticker 7 as negatives: plain InfoNCE over all three keys
    row1 = F.cross_entropy(F.normalize(q[1:], dim=-1) @ F.normalize(keys, dim=-1).T / 0.1, torch.tensor([1]))
    expected = (2 * row0.item() + row1.item()) / 3
    assert dup.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        info_nce(q, keys, 0.1, torch.zeros(3, 3, dtype=torch.bool))


def test_symmetric_kl_finite_with_zeros_and_zero_for_equal():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    q = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    value = symmetric_kl(p, q)
    assert torch.isfinite(value) and value > 1.0
    assert symmetric_kl(p, p).item() == pytest.approx(0.0, abs=1e-7)
    p.requires_grad_(True)
    symmetric_kl(p, q).backward()
    assert torch.isfinite(p.grad).all()


def test_symmetric_kl_is_symmetric_and_matches_torch():
    g = torch.Generator().manual_seed(3)
    p, q = torch.rand(4, 5, generator=g).softmax(-1), torch.rand(4, 5, generator=g).softmax(-1)
    ref = 0.5 * (F.kl_div(q.log(), p, reduction="batchmean") + F.kl_div(p.log(), q, reduction="batchmean"))
    assert symmetric_kl(p, q, eps=0.0).item() == pytest.approx(ref.item(), rel=1e-5)
    assert symmetric_kl(p, q).item() == pytest.approx(symmetric_kl(q, p).item(), rel=1e-6)


def _inputs(b: int = 4, d: int = 8, e: int = 8, a: int = 5) -> dict:
    g = torch.Generator().manual_seed(4)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    def views(n: int) -> Views:
        return Views(r(n, d), r(n, d), r(n, e).softmax(-1), r(n, e).softmax(-1), r(n, a).softmax(-1),
                     r(n, a).softmax(-1))

    return dict(query=r(b, d), sticker=r(b, d), query_emotion=r(b, d), sticker_emotion=r(b, d),
                query_intention=r(b, d), sticker_intention=r(b, d), text_views=views(b), image_views=views(b),
                sticker_ids=torch.tensor([0, 1, 0, 2]))


def test_loss_returns_every_named_term_and_they_backpropagate():
    loss = DLCFLoss()
    terms = loss(**_inputs())
    assert set(terms) == {"inter_d2s", "inter_s2d", "inter_emotion", "inter_intention", "intra_text_kl",
                          "intra_image_kl", "intra_text_nce", "intra_image_nce"}
    sum(terms.values()).backward()
    assert loss.log_temperature.grad is not None and loss.log_temperature.grad != 0
    assert loss.temperature().item() == pytest.approx(0.07, rel=1e-5)


def test_weights_scale_terms():
    full = DLCFLoss(DLCFConfig(inter_weight=1.0, intra_weight=1.0))(**_inputs())
    half = DLCFLoss()(**_inputs())
    for name in full:
        assert half[name].item() == pytest.approx(0.5 * full[name].item(), rel=1e-6)


def test_disabled_terms_are_absent_and_need_no_inputs():
    config = DLCFConfig(inter_emotion=False, inter_intention=False, intra_image=False)
    inputs = _inputs()
    for name in ("query_emotion", "sticker_emotion", "query_intention", "sticker_intention", "image_views"):
        inputs.pop(name)
    terms = DLCFLoss(config)(**inputs)
    assert set(terms) == {"inter_d2s", "inter_s2d", "intra_text_kl", "intra_text_nce"}


def test_all_off_owns_no_parameters_and_returns_nothing():
    off = DLCFConfig(inter_query=False, inter_emotion=False, inter_intention=False, intra_text=False,
                     intra_image=False)
    loss = DLCFLoss(off)
    assert list(loss.parameters()) == [] and list(loss.buffers()) == []
    assert loss() == {}


def test_missing_input_for_enabled_term_fails_clearly():
    inputs = _inputs()
    inputs.pop("sticker")
    with pytest.raises(ValueError, match="sticker"):
        DLCFLoss()(**inputs)


def test_temperature_is_clamped_and_config_validated():
    loss = DLCFLoss(DLCFConfig(learn_temperature=False))
    assert list(loss.parameters()) == []
    with torch.no_grad():
        loss.log_temperature.fill_(math.log(1e-5))
    assert loss.temperature().item() == pytest.approx(0.01)
    with pytest.raises(ValueError):
        DLCFConfig(temperature=2.0)
