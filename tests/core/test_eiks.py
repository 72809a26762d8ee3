import pytest
import torch
import torch.nn.functional as F

from eigml.model.eiks import EIKS, EIKSConfig, select_top_m, soft_cross_entropy

D, E, R = 16, 8, 4


def _inputs(b: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    knowledge = torch.randn(b, R, D, generator=g)
    target = torch.rand(b, E, generator=g).softmax(-1)
    emotion = torch.randn(b, D, generator=g)
    return knowledge, target, emotion


def test_changes_exactly_the_top_m_least_emotion_relevant_vectors():
    torch.manual_seed(0)
    eiks = EIKS(EIKSConfig(top_m=2), D)
    knowledge, target, emotion = _inputs()
    out, aux = eiks(knowledge, target, emotion)
    assert out.shape == knowledge.shape
    ce = soft_cross_entropy(eiks.emotion_classifier(knowledge), target[:, None, :])
    changed = (out != knowledge).any(dim=-1)
    for b in range(knowledge.shape[0]):
        worst = set(ce[b].argsort(descending=True)[:2].tolist())
        assert set(changed[b].nonzero().flatten().tolist()) == worst
    assert set(aux) == {"eiks_emotion", "eiks_regression"}
    assert aux["eiks_emotion"].item() == pytest.approx(ce.mean().item(), rel=1e-6)


def test_top_m_zero_is_identity_and_select_top_m():
    eiks = EIKS(EIKSConfig(top_m=0), D)
    knowledge, target, emotion = _inputs()
    out, _ = eiks(knowledge, target, emotion)
    assert torch.equal(out, knowledge)
    mask = select_top_m(torch.tensor([[0.1, 0.9, 0.5, 0.2]]), 2)
    assert mask.tolist() == [[False, True, True, False]]


def test_true_step_is_minus_the_cross_entropy_gradient():
    torch.manual_seed(1)
    eiks = EIKS(EIKSConfig(), D)
    knowledge, target, _ = _inputs()
    k = knowledge.clone().requires_grad_(True)
    soft_cross_entropy(eiks.emotion_classifier(k[0, 1]), target[0]).backward()
    step = eiks.true_step(knowledge, target[:, None, :].expand(-1, R, -1))
    torch.testing.assert_close(step[0, 1], -k.grad[0, 1])
    # a small step along it lowers that vector's loss
    before = soft_cross_entropy(eiks.emotion_classifier(knowledge), target[:, None, :])
    after = soft_cross_entropy(eiks.emotion_classifier(knowledge + 0.1 * step), target[:, None, :])
    assert (after < before).all()


def test_gradients_flow_to_inputs_and_modules_but_target_is_detached():
    torch.manual_seed(2)
    eiks = EIKS(EIKSConfig(), D)
    knowledge, target, emotion = _inputs()
    knowledge.requires_grad_(True)
    emotion.requires_grad_(True)
    target.requires_grad_(True)
    out, aux = eiks(knowledge, target, emotion)
    (out.sum() + sum(aux.values())).backward()
    assert knowledge.grad is not None and emotion.grad is not None
    assert target.grad is None
    for name in ("emotion_classifier", "regression_net", "gate"):
        assert all(p.grad is not None for p in getattr(eiks, name).parameters()), name


def test_regression_loss_trains_only_the_regression_net():
    torch.manual_seed(3)
    eiks = EIKS(EIKSConfig(), D)
    knowledge, target, emotion = _inputs()
    knowledge.requires_grad_(True)
    _, aux = eiks(knowledge, target, emotion)
    aux["eiks_regression"].backward()
    assert knowledge.grad is None
    assert eiks.emotion_classifier.weight.grad is None and eiks.gate.weight.grad is None
    assert eiks.regression_net[0].weight.grad is not None


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_eval_runs_without_autograd(context):
    torch.manual_seed(4)
    eiks = EIKS(EIKSConfig(), D)
    knowledge, target, emotion = _inputs()
    with torch.no_grad():
        eiks.train()
        out_train_nograd, aux_train_nograd = eiks(knowledge, target, emotion)
    eiks.eval()
    with context():
        out, aux = eiks(knowledge, target, emotion)
    assert set(aux) == {"eiks_emotion"} and set(aux_train_nograd) == {"eiks_emotion"}
    torch.testing.assert_close(out, out_train_nograd)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: thread start-up would dominate on a shared machine
    yield
    torch.set_num_threads(threads)


def test_regression_net_learns_the_gradient_direction(one_thread):
    torch.manual_seed(0)
    b = 64
    eiks = EIKS(EIKSConfig(hidden=64), D)
    # the emotion embedding carries the target, as the dialogue's emotion embedding does
    projection = torch.randn(E, D)
    dirichlet = torch.distributions.Dirichlet(torch.full((E,), 0.3))

    def batch():
        knowledge, target = torch.randn(b, R, D), dirichlet.sample((b,))
        return knowledge, target, target @ projection

    optimizer = torch.optim.Adam(eiks.regression_net.parameters(), lr=3e-3)
    for _ in range(200):
        _, aux = eiks(*batch())
        optimizer.zero_grad()
        aux["eiks_regression"].backward()
        optimizer.step()
    knowledge, target, emotion = batch()
    predicted = eiks.predict_step(knowledge, emotion)
    true = eiks.true_step(knowledge, target[:, None, :].expand(-1, R, -1))
    assert F.cosine_similarity(predicted, true, dim=-1).mean().item() > 0.9
