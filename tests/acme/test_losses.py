import torch
import torch.nn.functional as F

from stratos.acme.losses import hidden_mse, soft_cross_entropy


def test_soft_ce_equals_teacher_entropy_plus_kl():
    torch.manual_seed(0)
    s, t = torch.randn(5, 4), torch.randn(5, 4)
    for T in (1.0, 2.0):
        p_t = F.softmax(t / T, -1)
        entropy = -(p_t * p_t.log()).sum(-1).mean()
        kl = F.kl_div(F.log_softmax(s / T, -1), p_t, reduction="batchmean")  # KL(p_t || p_s)
        torch.testing.assert_close(soft_cross_entropy(s, t, T), (entropy + kl) * T * T)


def test_soft_ce_is_minimised_at_the_teacher_and_ignores_teacher_grads():
    t = torch.randn(3, 5, requires_grad=True)
    s = t.detach().clone().requires_grad_(True)
    soft_cross_entropy(s, t).backward()
    assert s.grad.abs().max() < 1e-6 and t.grad is None


def test_hidden_mse_pairs_layers_it_was_cut_from():
    torch.manual_seed(0)
    teacher = [torch.randn(2, 3, 4) for _ in range(5)]  # embeddings + 4 layers
    student = [teacher[0], teacher[1], teacher[3]]  # depth .5 keeps layers [0, 2]
    assert hidden_mse(student, teacher, [0, 2]) == 0
    off = [teacher[0], teacher[1], teacher[2]]
    assert hidden_mse(off, teacher, [0, 2]) > 0
