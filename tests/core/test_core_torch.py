"""NumPy and torch backends run the same math: parity on the CPU, and on CUDA where a GPU is
present (the device-parametrised tests; skipped without torch).

Random numbers are drawn by NumPy for both backends, so in float64 the two must agree to
rounding (rtol 1e-9: different BLAS summation orders); float32 agrees to its own precision."""

import numpy as np
import pytest

from twolayer import RunConfig, run_once
from twolayer.activations import ACTIVATIONS, get_activation
from twolayer.backend import Backend, to_numpy
from twolayer.losses import LOSSES, get_loss
from twolayer.student import init_student
from twolayer.train import ridge_path

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

# every run-level parity test runs on each torch device this machine has
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
on_devices = pytest.mark.parametrize("device", DEVICES)

BASE = dict(
    teacher=dict(name="single_index", d=30, link="tanh", noise=0.1),
    student=dict(N=40, activation="relu"),
    train=dict(protocol="giant_steps", n=60, steps=[dict(eta=dict(c=1.0, alpha=0.5, S="N"))]),
    readout=dict(n=60, lambdas=[0.0, 1e-3, 1e-1], baselines=["random_features", "linear"]),
    evaluate=dict(n_test=1500),
    measure=["spectrum", "overlaps", {"name": "ridge_theory", "random_features": True}],
)


def _compare(spec, rtol, device="cpu"):
    a = run_once(RunConfig.model_validate(spec), 0)
    b = run_once(RunConfig.model_validate({**spec, "backend": {"name": "torch", "device": device,
                                                               "dtype": "float64"}}), 0)
    assert a.scalars.keys() == b.scalars.keys()
    for key, value in a.scalars.items():
        assert b.scalars[key] == pytest.approx(value, rel=rtol, abs=1e-12), key
    for key, value in a.arrays.items():
        np.testing.assert_allclose(b.arrays[key], value, rtol=rtol, atol=1e-10, err_msg=key)


@on_devices
def test_giant_steps_run_parity(device):
    _compare(BASE, 1e-9, device)


@on_devices
def test_gd_minibatch_langevin_run_parity(device):
    spec = dict(BASE)
    spec["teacher"] = dict(name="xor", d=20, mu_norm=3.0, label_noise=0.1)
    spec["train"] = dict(protocol="gd", n=80, loss="logistic", steps=30, eta=0.5, batch_size=16,
                         train="W", temperature=1e-4, weight_decay={"W": 1e-3},
                         monitor=["test_loss", "test_err01"], monitor_n=200, record_every=5)
    spec["readout"] = None
    spec["measure"] = []
    _compare(spec, 1e-9, device)


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activation_parity(name):
    act = get_activation(name)
    z = np.linspace(-3, 3, 101)
    zt = torch.as_tensor(z)
    np.testing.assert_allclose(to_numpy(act(zt)), act(z), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_numpy(act.derivative(zt)), act.derivative(z), rtol=1e-12,
                               atol=1e-14)
    assert act.derivative(zt).dtype == torch.float64


@pytest.mark.parametrize("loss_name", LOSSES.names())
def test_gradient_parity(loss_name):
    rng = np.random.default_rng(0)
    s_np = init_student(12, 7, get_activation("tanh"), rng)
    backend = Backend("torch")
    s_t = s_np.replace(W=backend.asarray(s_np.W), a=backend.asarray(s_np.a))
    X = rng.standard_normal((9, 7))
    y = rng.choice([-1.0, 1.0], 9)
    loss = get_loss(loss_name)
    for g_np, g_t in zip(s_np.gradients(X, y, loss), s_t.gradients(backend.asarray(X),
                                                                   backend.asarray(y), loss),
                         strict=True):
        np.testing.assert_allclose(to_numpy(g_t), g_np, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n,p", [(50, 20), (20, 50)])
def test_ridge_path_parity(n, p):
    rng = np.random.default_rng(1)
    F, y = rng.standard_normal((n, p)), rng.standard_normal(n)
    A_np = ridge_path(F, y, [0.0, 0.1, 1.0])
    A_t = ridge_path(torch.as_tensor(F), torch.as_tensor(y), [0.0, 0.1, 1.0])
    np.testing.assert_allclose(to_numpy(A_t), A_np, rtol=1e-8, atol=1e-10)


@on_devices
def test_float32_run_is_close(device):
    """float32 rounding (6e-8 relative per operation) accumulates over d, N ~ 40 sums and an
    eigendecomposition: agreement to 1e-3 relative is the expected order."""
    a = run_once(RunConfig.model_validate(BASE), 0)
    b = run_once(RunConfig.model_validate({**BASE, "backend": {"name": "torch", "device": device,
                                                               "dtype": "float32"}}), 0)
    for key in ("readout.test_mse", "random_features.test_mse", "network.test_mse"):
        assert b.scalars[key] == pytest.approx(a.scalars[key], rel=1e-3), key
