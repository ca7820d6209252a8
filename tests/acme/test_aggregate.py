import numpy as np
import torch
from scipy.stats import wasserstein_distance

from stratos.acme.aggregate import (distance_matrix, fedavg_weights, feature_summary, mix_importance, mix_states,
                                    projections, similarity_weights, summary_distance)


def test_summary_distance_is_wasserstein_of_the_quantiles():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (500, 3)), rng.normal(1, 1, (500, 3))
    sa, sb = feature_summary(a, 16), feature_summary(b, 16)
    assert sa["marginal"].shape == (16, 3) and sa["marginal"].dtype == np.float16
    d = summary_distance(sa, sb)
    exact = np.mean([wasserstein_distance(a[:, k], b[:, k]) for k in range(3)])
    assert abs(d - exact) < 0.05 and abs(d - 1.0) < 0.1  # a unit mean shift
    assert summary_distance(sa, sa) == 0


def test_sliced_distance_sees_correlation_the_marginals_miss():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1000, 1))
    x = np.vstack([z, -z])  # symmetric, so x and -x have identical marginals
    pos, neg = np.hstack([x, x]), np.hstack([x, -x])  # same marginals, opposite correlation
    P = projections(2, 8, seed=0)
    sp, sn = feature_summary(pos, 16, P), feature_summary(neg, 16, P)
    assert summary_distance(sp, sn, "marginal") < 1e-3
    assert summary_distance(sp, sn, "sliced") > 0.2


def test_similarity_weights_rows_and_fedavg():
    W = distance_matrix([{"marginal": np.full((4, 2), v, np.float16)} for v in (0.0, 0.1, 2.0)])
    A = similarity_weights(W, temperature=0.1)
    np.testing.assert_allclose(A.sum(1), 1.0)
    assert (np.argmax(A, 1) == np.arange(3)).all()  # each client trusts itself most
    assert A[0, 1] > A[0, 2]  # ... then the client with the nearer distribution
    assert np.allclose(similarity_weights(W, 1e6), 1 / 3)  # huge temperature: uniform
    F = fedavg_weights([10, 30, 60])
    assert np.allclose(F, [[0.1, 0.3, 0.6]] * 3)


def test_mixing_with_identity_weights_returns_each_clients_own():
    states = [{"w": torch.full((2, 2), float(i))} for i in range(3)]
    imps = [[np.full(4, float(i))] for i in range(3)]
    for i, (s, m) in enumerate(zip(mix_states(states, np.eye(3)), mix_importance(imps, np.eye(3)))):
        assert torch.equal(s["w"], states[i]["w"]) and np.array_equal(m[0], imps[i][0])
    avg = mix_states(states, fedavg_weights([1, 1, 1]))
    assert torch.allclose(avg[0]["w"], torch.ones(2, 2))
