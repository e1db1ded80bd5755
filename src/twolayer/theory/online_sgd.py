"""Deterministic limit of one-pass (online) SGD in the teacher-student setting.

The ordinary differential equations of Saad & Solla (1995) and Riegler & Biehl (1995) for the
order parameters of a two-layer student of width K learning a committee teacher of width M, as
proved by Goldt, Advani, Saxe, Krzakala & Zdeborova (NeurIPS 2019), written in twolayer's own
conventions (docs/theory.md, "Online SGD in the teacher-student setting"):

- inputs x ~ N(0, I_d); student preactivations lambda_i = <w_i, x> (rows of W of norm O(1), no
  1/sqrt(d)); teacher preactivations nu_m = <b_m, x>;
- order parameters Q = W W^T (K x K), R = W B^T (K x M), T = B B^T (M x M, fixed), and the
  effective second layer v = scale(K) * a (student) and v* (teacher): f = sum_i v_i sigma(lambda_i),
  y = sum_m v*_m g(nu_m) + zeta xi;
- twolayer's update with the square loss l = (f - y)^2 / 2 averaged over a fresh batch of b
  samples, step size eta_k = eta_0 (1 + k)^(-decay), weight decay wd_W, wd_a and Langevin
  temperature T on W. Time is t = k b / d; the ODE learning rate is lr(t) = eta_k d / b.

With Delta = f - y and u = (v, -v*) (the weights of every preactivation in Delta), the equations
are (Goldt et al. 2019, eqs. (8)-(10), with the weight decay and noise terms added):

    dR_im/dt = -lr v_i E[sigma'(lambda_i) nu_m Delta] - lr wd_W R_im
    dQ_ik/dt = -lr v_i E[sigma'(lambda_i) lambda_k Delta]
               - lr v_k E[sigma'(lambda_k) lambda_i Delta]
               + lr^2 v_i v_k E[sigma'(lambda_i) sigma'(lambda_k) Delta^2]
               - 2 lr wd_W Q_ik + 2 lr T d delta_ik
    dv_i/dt  = -lr scale^2 E[sigma(lambda_i) Delta] - lr wd_a v_i          (second layer trained)

and every expectation is a sum of the Gaussian integrals I2 (2 variables), I3 (3), I4 (4) and
J2 = E[sigma'(u) sigma'(v)] over the covariance [[Q, R], [R^T, T]]. They have closed forms for
erf (Saad & Solla 1995; Goldt et al. 2019, appendix) and, except I4, for relu; any other
activation is integrated by a tensor Gauss-Hermite rule on a symmetric square root of the
covariance. The test error is test_mse = E[(f - y)^2] = 2 eps_g + zeta^2 with
eps_g = (1/2) u^T I2 u.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.special

from twolayer.theory.hermite import gauss_hermite_rule

__all__ = [
    "ClosedForm",
    "GaussianIntegrals",
    "OnlineSGDProblem",
    "OnlineSGDSolution",
    "closed_form_of",
    "erf_i2",
    "erf_i3",
    "erf_i4",
    "erf_j2",
    "expectation_of_product",
    "gaussian_expectation_nd",
    "generalisation_error",
    "integrate_online_sgd",
    "plateau_fixed_point",
    "relu_i2",
    "relu_i3",
    "relu_i4",
    "relu_j2",
    "saad_solla_plateau",
    "unstable_rate",
]

ArrayFn = Callable[[np.ndarray], np.ndarray]
_TWO_OVER_PI = 2.0 / math.pi


# ---------------------------------------------------------------------------------------------
# Closed forms. The erf ones are for g(x) = erf(x / sqrt 2), g'(x) = sqrt(2/pi) exp(-x^2/2)
# (Saad & Solla 1995; Goldt et al. 2019, appendix); each argument is an array of covariance
# entries (broadcast), C_ab = E[x_a x_b] of the variables in the order of the integral.


def erf_i2(c11: Any, c12: Any, c22: Any) -> np.ndarray:
    """E[g(x1) g(x2)] = (2/pi) arcsin(C12 / sqrt((1 + C11)(1 + C22))), g = erf(. / sqrt 2)."""
    return _TWO_OVER_PI * np.arcsin(np.clip(c12 / np.sqrt((1 + c11) * (1 + c22)), -1.0, 1.0))


def erf_i3(c11: Any, c12: Any, c13: Any, c23: Any, c33: Any) -> np.ndarray:
    """E[g'(x1) x2 g(x3)] = (2/pi) (C23 (1 + C11) - C12 C13) / ((1 + C11) sqrt(L3)),
    L3 = (1 + C11)(1 + C33) - C13^2."""
    lam3 = (1 + c11) * (1 + c33) - c13**2
    return _TWO_OVER_PI * (c23 * (1 + c11) - c12 * c13) / ((1 + c11) * np.sqrt(lam3))


def erf_i4(c11: Any, c12: Any, c13: Any, c14: Any, c22: Any, c23: Any, c24: Any, c33: Any,
           c34: Any, c44: Any) -> np.ndarray:
    """E[g'(x1) g'(x2) g(x3) g(x4)] = (4 / (pi^2 sqrt(L4))) arcsin(L0 / sqrt(L1 L2)) with
    L4 = (1 + C11)(1 + C22) - C12^2 and L0, L1, L2 of Saad & Solla (1995)."""
    lam4 = (1 + c11) * (1 + c22) - c12**2
    lam0 = (lam4 * c34 - c23 * c24 * (1 + c11) - c13 * c14 * (1 + c22)
            + c12 * c13 * c24 + c12 * c14 * c23)
    lam1 = lam4 * (1 + c33) - c23**2 * (1 + c11) - c13**2 * (1 + c22) + 2 * c12 * c13 * c23
    lam2 = lam4 * (1 + c44) - c24**2 * (1 + c11) - c14**2 * (1 + c22) + 2 * c12 * c14 * c24
    ratio = np.clip(lam0 / np.sqrt(lam1 * lam2), -1.0, 1.0)
    return 4.0 / (math.pi**2 * np.sqrt(lam4)) * np.arcsin(ratio)


def erf_j2(c11: Any, c12: Any, c22: Any) -> np.ndarray:
    """E[g'(x1) g'(x2)] = (2/pi) / sqrt((1 + C11)(1 + C22) - C12^2)."""
    return _TWO_OVER_PI / np.sqrt((1 + c11) * (1 + c22) - c12**2)


def _corr(c12: Any, c11: Any, c22: Any) -> np.ndarray:
    return np.clip(c12 / np.sqrt(c11 * c22), -1.0, 1.0)


def relu_i2(c11: Any, c12: Any, c22: Any) -> np.ndarray:
    """E[relu(x1) relu(x2)] = sqrt(C11 C22) (sin th + (pi - th) cos th) / (2 pi), cos th the
    correlation (the arc-cosine kernel of degree 1, Cho & Saul 2009)."""
    theta = np.arccos(_corr(c12, c11, c22))
    return np.sqrt(c11 * c22) * (np.sin(theta) + (math.pi - theta) * np.cos(theta)) / (2 * math.pi)


def relu_j2(c11: Any, c12: Any, c22: Any) -> np.ndarray:
    """E[1(x1 > 0) 1(x2 > 0)] = 1/4 + arcsin(rho) / (2 pi) (Sheppard's formula)."""
    return 0.25 + np.arcsin(_corr(c12, c11, c22)) / (2 * math.pi)


def relu_i3(c11: Any, c12: Any, c13: Any, c23: Any, c33: Any) -> np.ndarray:
    """E[1(x1 > 0) x2 relu(x3)] by Stein's lemma on x2:
    C21 E[delta(x1) relu(x3)] + C23 E[1(x1 > 0) 1(x3 > 0)]
    = C12 sqrt(C11 C33 - C13^2) / (2 pi C11) + C23 (1/4 + arcsin(rho13) / (2 pi))."""
    det = np.maximum(c11 * c33 - c13**2, 0.0)
    return c12 * np.sqrt(det) / (2 * math.pi * c11) + c23 * relu_j2(c11, c13, c33)


# ---------------------------------------------------------------------------------------------
# relu I4: orthant moments of a zero-mean Gaussian, reduced by Stein's lemma to orthant
# probabilities (closed forms in 1-3 dimensions, Plackett's one-dimensional integral in 4)


def _orthant_probability(S: np.ndarray) -> float:
    """P(y > 0) for y ~ N(0, S), S of size p <= 4 (positive definite)."""
    p = S.shape[0]
    if p == 0:
        return 1.0
    if p == 1:
        return 0.5
    sd = np.sqrt(np.diag(S))
    rho = np.clip(S / np.outer(sd, sd), -1.0, 1.0)
    iu = np.triu_indices(p, 1)
    if p <= 3:  # Sheppard (p = 2) and its three-dimensional extension
        return 0.5**p + float(np.arcsin(rho[iu]).sum()) / (2 * math.pi * (p - 1))
    return _orthant_probability_4(rho)


@functools.cache
def _plackett_rule(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    # s = sin(pi u / 2) clusters the nodes near s = 1, where 1 / sqrt(1 - s^2 rho^2) peaks
    u, w = np.polynomial.legendre.leggauss(n)
    u = 0.5 * (u + 1.0)
    return np.sin(0.5 * math.pi * u), 0.5 * w * 0.5 * math.pi * np.cos(0.5 * math.pi * u)


def _orthant_probability_4(rho: np.ndarray) -> float:
    """P(y > 0) for a 4-dimensional correlation matrix rho, by Plackett's (1954) identity
    dP/drho_ij = phi_2(0, 0; rho_ij) P(y_k > 0, y_l > 0 | y_i = y_j = 0) integrated along
    rho(s) = (1 - s) I + s rho from P = 1/16 at s = 0 (Gauss-Legendre in s)."""
    s, w = _plackett_rule()
    total = 0.0
    for i, j in itertools.combinations(range(4), 2):
        k, l = (m for m in range(4) if m not in (i, j))
        r = s * rho[i, j]
        # covariance of (y_k, y_l) given y_i = y_j = 0 along the path (unit variances)
        a = np.stack([s * rho[k, i], s * rho[k, j]], -1)
        b = np.stack([s * rho[l, i], s * rho[l, j]], -1)
        det = 1.0 - r * r
        inv = np.stack([np.stack([1 / det, -r / det], -1), np.stack([-r / det, 1 / det], -1)], -2)
        ckl = s * rho[k, l] - np.einsum("ni,nij,nj->n", a, inv, b)
        ckk = 1.0 - np.einsum("ni,nij,nj->n", a, inv, a)
        cll = 1.0 - np.einsum("ni,nij,nj->n", b, inv, b)
        p2 = 0.25 + np.arcsin(np.clip(ckl / np.sqrt(ckk * cll), -1, 1)) / (2 * math.pi)
        total += rho[i, j] * float(w @ (p2 / (2 * math.pi * np.sqrt(det))))
    return 1.0 / 16.0 + total


def _condition_on_zero(S: np.ndarray, l: int) -> tuple[np.ndarray, float]:
    """Covariance of y without y_l given y_l = 0, and the density of y_l at 0."""
    keep = [m for m in range(S.shape[0]) if m != l]
    cond = S[np.ix_(keep, keep)] - np.outer(S[keep, l], S[l, keep]) / S[l, l]
    return cond, 1.0 / math.sqrt(2 * math.pi * S[l, l])


def _orthant_first_moment(S: np.ndarray, a: int) -> float:
    """E[y_a 1(y > 0)] = sum_l S_al phi_l(0) P(y_-l > 0 | y_l = 0) (Stein's lemma)."""
    total = 0.0
    for l in range(S.shape[0]):
        cond, density = _condition_on_zero(S, l)
        total += S[a, l] * density * _orthant_probability(cond)
    return total


def _orthant_second_moment(S: np.ndarray, a: int, c: int) -> float:
    """E[y_a y_c 1(y > 0)] = S_ac P(y > 0) + sum_{l != c} S_al phi_l(0)
    E[y_c 1(y_-l > 0) | y_l = 0] (Stein's lemma on y_a; the l = c term has y_c delta(y_c) = 0).
    """
    total = S[a, c] * _orthant_probability(S)
    for l in range(S.shape[0]):
        if l == c:
            continue
        cond, density = _condition_on_zero(S, l)
        total += S[a, l] * density * _orthant_first_moment(cond, c - (c > l))
    return total


def relu_i4(C: np.ndarray) -> float:
    """E[1(x1 > 0) 1(x2 > 0) relu(x3) relu(x4)] for x ~ N(0, C), C (4, 4), some variables
    possibly equal (I4[i, i, ...]): E[x3 x4 1(x_j > 0 for the distinct j)], reduced by Stein's
    lemma to orthant probabilities (exact up to the 64-node rule of Plackett's integral in four
    dimensions)."""
    C = np.asarray(C, dtype=float)
    distinct: list[int] = []
    position = []
    for m in range(4):  # merge variables that are the same (unit correlation)
        for n_, j in enumerate(distinct):
            if abs(C[m, j]) >= (1 - 1e-12) * math.sqrt(C[m, m] * C[j, j]) and C[m, j] > 0:
                position.append(n_)
                break
        else:
            position.append(len(distinct))
            distinct.append(m)
    S = C[np.ix_(distinct, distinct)]
    return _orthant_second_moment(S, position[2], position[3])


# ---------------------------------------------------------------------------------------------
# Numerical Gaussian expectations


def _psd_sqrt(C: np.ndarray) -> np.ndarray:
    """A matrix L with L L^T = C for (batches of) PSD C, singular ones included (eigh, not
    Cholesky: the integrals I4[i, i, ...] have two equal variables)."""
    vals, vecs = np.linalg.eigh(C)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))[..., None, :]


def gaussian_expectation_nd(fn: Callable[[np.ndarray], np.ndarray], C: np.ndarray,
                            n_nodes: int) -> np.ndarray:
    """E[fn(x)] for x ~ N(0, C), by the tensor Gauss-Hermite rule of ``n_nodes`` per dimension
    mapped through a symmetric square root of C.

    Parameters
    ----------
    fn : callable
        Maps an array of points (..., n_points, p) to values (..., n_points).
    C : (..., p, p) array
        Covariances (a batch of them is integrated at once).
    n_nodes : int
        Nodes per dimension (n_nodes^p points): exact for polynomials of degree < 2 n_nodes in
        each variable; slow (algebraic) convergence for kinked functions (relu).

    Returns
    -------
    (...,) array
    """
    C = np.asarray(C, dtype=float)
    p = C.shape[-1]
    z, w = gauss_hermite_rule(int(n_nodes))
    grid = np.array(list(itertools.product(z, repeat=p)))  # (n^p, p)
    weights = np.prod(np.array(list(itertools.product(w, repeat=p))), axis=1)
    x = grid @ np.swapaxes(_psd_sqrt(C), -1, -2)  # (..., n^p, p)
    return fn(x) @ weights


#: Points per dimension of the trapezoid rule for p = 1..4 distinct variables (spacing 0.25 to
#: 0.75: errors below ~2e-5 for tanh-like activations of unit-variance preactivations,
#: tests/theory/test_online_sgd_integrals.py).
NUMERICAL_NODES = {1: 61, 2: 41, 3: 31, 4: 21}
#: Half-width (in standard deviations of the underlying standard normals) of the trapezoid rule;
#: the Gaussian weight beyond it is below 1e-13.
TRAPEZOID_HALF_WIDTH = 7.5


@functools.cache
def _trapezoid_grid(p: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor trapezoid rule for E f(z), z ~ N(0, I_p): (n^p, p) nodes and weights."""
    z = np.linspace(-TRAPEZOID_HALF_WIDTH, TRAPEZOID_HALF_WIDTH, n)
    w = np.exp(-0.5 * z * z)
    w /= w.sum()
    grid = np.array(list(itertools.product(z, repeat=p)))
    weights = np.prod(np.array(list(itertools.product(w, repeat=p))), axis=1)
    return grid, weights


def expectation_of_product(fns: Sequence[ArrayFn], index: Sequence[int], Sigma: np.ndarray,
                           nodes: dict[int, int]) -> float:
    """E[prod_s fns[s](x_{index[s]})] for x ~ N(0, Sigma).

    Repeated indices are one variable (E[sigma'(x_i) x_i sigma(x_i)] is one-dimensional), so
    the rule's dimension is the number of distinct indices p; the tensor trapezoid rule with
    ``nodes[p]`` points per dimension on [-7.5, 7.5] is mapped through a symmetric square root
    of the p x p covariance. The trapezoid rule converges geometrically for analytic integrands
    (error ~ exp(-2 pi a / h), a the distance of the nearest complex singularity, h the
    spacing), much faster than Gauss-Hermite for narrow functions such as tanh'(x)^2; kinks
    (relu) converge only algebraically (relu has its own closed forms).
    """
    distinct = list(dict.fromkeys(int(i) for i in index))
    S = Sigma[np.ix_(distinct, distinct)]
    grid, weights = _trapezoid_grid(len(distinct), nodes[len(distinct)])
    x = grid @ _psd_sqrt(S).T
    values = np.ones(len(weights))
    for fn, i in zip(fns, index, strict=True):
        values = values * fn(x[:, distinct.index(int(i))])
    return float(values @ weights)


# ---------------------------------------------------------------------------------------------
# The integrals of one (student, teacher) pair of activations


@dataclass(frozen=True)
class ClosedForm:
    """Which closed form applies: ``kind`` "erf" (sigma(z) = erf(scale z)) or "relu"."""

    kind: str
    scale: float = 1.0


def closed_form_of(act: Any) -> ClosedForm | None:
    """The closed form of a twolayer Activation, or None (then: numerical integration).

    ``erf`` and ``erf`` with an input ``scale`` (no shift, no centring) are erf(s z); the scale is
    read off the derivative at 0 (2 s / sqrt(pi)) and checked at two points. ``relu`` is relu.
    """
    name = getattr(act, "name", "")
    if name == "relu":
        return ClosedForm("relu")
    if name == "erf" or (name.startswith("erf(") and name.endswith("z+0)")):
        s = float(act.derivative(np.array([0.0]))[0]) * math.sqrt(math.pi) / 2.0
        probe = np.array([-0.7, 1.3])
        if s > 0 and np.allclose(act.fn(probe), scipy.special.erf(s * probe), atol=1e-14):
            return ClosedForm("erf", s)
    return None


@dataclass(frozen=True)
class GaussianIntegrals:
    """The Gaussian integrals of the ODEs for a student activation sigma and a teacher
    activation g, over the K + M preactivations (lambda_1..lambda_K, nu_1..nu_M).

    ``tables(Sigma, K)`` returns, for the covariance Sigma = [[Q, R], [R^T, T]] of shape (P, P),
    P = K + M, with phi_a = sigma for a < K and g for a >= K:

    - I2 (P, P): E[phi_a(x_a) phi_c(x_c)];
    - I3 (K, P, P): E[sigma'(x_i) x_b phi_c(x_c)];
    - I4 (K, K, P, P): E[sigma'(x_i) sigma'(x_k) phi_a(x_a) phi_c(x_c)];
    - J2 (K, K): E[sigma'(x_i) sigma'(x_k)].

    Closed forms when both are erf(s z) (any scales) or both relu (I4 of relu by Stein's lemma
    and Plackett's one-dimensional integral for the four-dimensional orthant probability);
    otherwise :func:`expectation_of_product` (a tensor trapezoid rule with ``nodes[p]`` points
    per dimension for an integral over p distinct variables; accuracy:
    tests/theory/test_online_sgd_integrals.py).
    """

    student: Any
    teacher: Any
    nodes: dict[int, int] = field(default_factory=lambda: dict(NUMERICAL_NODES))
    _forms: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_forms", (closed_form_of(self.student),
                                            closed_form_of(self.teacher)))

    @property
    def kind(self) -> str:
        """"erf", "relu" (closed forms; relu I4 by orthant reduction) or "numerical"."""
        s, t = self._forms
        if s is not None and t is not None and s.kind == t.kind:
            return s.kind
        return "numerical"

    def tables(self, Sigma: np.ndarray, K: int) -> tuple[np.ndarray, ...]:
        """(I2, I3, I4, J2) for the covariance ``Sigma`` (P, P) of K student and P - K teacher
        preactivations (see the class docstring for shapes)."""
        Sigma = np.asarray(Sigma, dtype=float)
        if self.kind == "erf":
            return self._erf_tables(Sigma, K)
        if self.kind == "relu":
            i2, i3, j2 = _closed_tables(Sigma, K, relu_i2, relu_i3, relu_j2)
            P = Sigma.shape[0]
            i4 = np.empty((K, K, P, P))
            for i, k, a, c in itertools.product(range(K), range(K), range(P), range(P)):
                if k < i:  # symmetric in (i, k)
                    i4[i, k, a, c] = i4[k, i, a, c]
                else:
                    i4[i, k, a, c] = relu_i4(Sigma[np.ix_([i, k, a, c], [i, k, a, c])])
            return i2, i3, i4, j2
        return self._numerical_tables(Sigma, K)

    def _erf_scaled(self, Sigma: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
        # erf(s x) = g(sqrt2 s x) with g = erf(. / sqrt 2): integrate g over x' = sqrt2 s x
        P = Sigma.shape[0]
        s = np.array([self._forms[0].scale] * K + [self._forms[1].scale] * (P - K))
        D = math.sqrt(2.0) * s
        return Sigma * np.outer(D, D), s

    def _erf_tables(self, Sigma: np.ndarray, K: int) -> tuple[np.ndarray, ...]:
        Sp, s = self._erf_scaled(Sigma, K)
        P = Sigma.shape[0]
        i2, i3, j2 = _closed_tables(Sp, K, erf_i2, erf_i3, erf_j2)
        i3 = i3 * (s[:K, None, None] / s[None, :, None])  # sigma' = sqrt2 s g', x_b = x'_b / D_b
        j2 = j2 * 2 * np.outer(s[:K], s[:K])
        d = np.diag(Sp)
        i, k, a, c = _grid(K, K, P, P)
        i4 = erf_i4(d[i], Sp[i, k], Sp[i, a], Sp[i, c], d[k], Sp[k, a], Sp[k, c], d[a], Sp[a, c],
                    d[c])
        i4 = i4 * 2 * np.outer(s[:K], s[:K])[:, :, None, None]
        return i2, i3, i4, j2

    def i2_table(self, Sigma: np.ndarray, K: int) -> np.ndarray:
        """I2 (P, P) alone (what the test error needs)."""
        Sigma = np.asarray(Sigma, dtype=float)
        if self.kind == "erf":
            Sp, _ = self._erf_scaled(Sigma, K)
            d = np.diag(Sp)
            return erf_i2(d[:, None], Sp, d[None, :])
        if self.kind == "relu":
            d = np.diag(Sigma)
            return relu_i2(d[:, None], Sigma, d[None, :])
        P = Sigma.shape[0]
        out = np.empty((P, P))
        for a, c in itertools.product(range(P), repeat=2):
            out[a, c] = out[c, a] if c < a else self._expect(
                [self._phi(a, K), self._phi(c, K)], [a, c], Sigma)
        return out

    def _phi(self, a: int, K: int) -> ArrayFn:
        # phi_a = sigma for a student index (a < K), g for a teacher index
        return self.student.fn if a < K else self.teacher.fn

    def _expect(self, fns: Sequence[ArrayFn], index: Sequence[int], Sigma: np.ndarray) -> float:
        return expectation_of_product(fns, index, Sigma, self.nodes)

    def _numerical_tables(self, Sigma: np.ndarray, K: int) -> tuple[np.ndarray, ...]:
        P = Sigma.shape[0]
        dsig = self.student.derivative

        def identity(x: np.ndarray) -> np.ndarray:
            return x

        i2 = self.i2_table(Sigma, K)
        i3 = np.empty((K, P, P))
        for i, b, c in itertools.product(range(K), range(P), range(P)):
            i3[i, b, c] = self._expect([dsig, identity, self._phi(c, K)], [i, b, c], Sigma)
        j2 = np.empty((K, K))
        for i, k in itertools.product(range(K), repeat=2):
            j2[i, k] = j2[k, i] if k < i else self._expect([dsig, dsig], [i, k], Sigma)
        i4 = np.empty((K, K, P, P))
        for i, k, a, c in itertools.product(range(K), range(K), range(P), range(P)):
            if k < i:
                i4[i, k, a, c] = i4[k, i, a, c]
            elif c < a:
                i4[i, k, a, c] = i4[i, k, c, a]
            else:
                i4[i, k, a, c] = self._expect(
                    [dsig, dsig, self._phi(a, K), self._phi(c, K)], [i, k, a, c], Sigma)
        return i2, i3, i4, j2


@functools.cache
def _grid(*sizes: int) -> tuple[np.ndarray, ...]:
    """np.ix_ over ranges of the given sizes (cached: the right-hand side asks for the same
    ones at every evaluation)."""
    return np.ix_(*(range(n) for n in sizes))


def _closed_tables(Sigma: np.ndarray, K: int, f2: Callable, f3: Callable, fj: Callable
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I2 (P, P), I3 (K, P, P) and J2 (K, K) from closed forms of one activation pair."""
    P = Sigma.shape[0]
    d = np.diag(Sigma)
    i2 = f2(d[:, None], Sigma, d[None, :])
    i, b, c = _grid(K, P, P)
    i3 = f3(d[i], Sigma[i, b], Sigma[i, c], Sigma[b, c], d[c])
    j2 = fj(d[:K, None], Sigma[:K, :K], d[None, :K])
    return i2, i3, j2


# ---------------------------------------------------------------------------------------------
# The problem, the right-hand side and the integration


@dataclass(frozen=True)
class OnlineSGDProblem:
    """One online-SGD run in the ODE's variables (twolayer's conventions, docs/theory.md).

    Attributes
    ----------
    integrals : GaussianIntegrals
        The student activation sigma and the teacher activation g.
    T : (M, M) array
        Teacher overlaps B B^T (the identity for orthonormal teacher directions).
    v_teacher : (M,) array
        The teacher's second layer v* (``multi_index`` ``weights``).
    noise : float
        Label-noise standard deviation zeta.
    output_scale : float
        The student's scale(K): 1/sqrt(K) (standard) or 1/K (mean field); v = scale * a.
    eta : float
        twolayer's initial step size eta_0 (on the batch-mean loss).
    batch : int
        Batch size b of each fresh batch.
    d : int
        Input dimension.
    decay : float
        eta_k = eta_0 (1 + k)^(-decay) at step k.
    train_a : bool
        Whether the second layer is trained.
    train_W : bool
        Whether the first layer is trained.
    wd_W, wd_a : float
        Weight decays (the objective's (wd/2) ||.||^2 terms).
    temperature : float
        Langevin temperature on the trained layers; kept on W (a term 2 lr T d in dQ_ii/dt,
        finite in the limit when T = O(1/d)), dropped on a (its effect on a is a random walk of
        variance 2 lr T per unit time, not a deterministic term).
    """

    integrals: GaussianIntegrals
    T: np.ndarray
    v_teacher: np.ndarray
    noise: float = 0.0
    output_scale: float = 1.0
    eta: float = 1.0
    batch: int = 1
    d: int = 1000
    decay: float = 0.0
    train_a: bool = False
    train_W: bool = True
    wd_W: float = 0.0
    wd_a: float = 0.0
    temperature: float = 0.0

    def lr(self, t: float) -> float:
        """ODE learning rate at time t: eta_k d / b with k = t d / b."""
        step = t * self.d / self.batch
        return self.eta * self.d / self.batch * (1.0 + step) ** (-self.decay)

    def time_of_step(self, steps: Any) -> np.ndarray:
        """t = k b / d."""
        return np.asarray(steps, dtype=float) * self.batch / self.d

    def covariance(self, Q: np.ndarray, R: np.ndarray) -> np.ndarray:
        """[[Q, R], [R^T, T]], shape (K + M, K + M)."""
        return np.block([[Q, R], [R.T, self.T]])

    def rhs(self, t: float, Q: np.ndarray, R: np.ndarray, v: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dQ/dt (K, K), dR/dt (K, M), dv/dt (K,)) at time t."""
        K = Q.shape[0]
        i2, i3, i4, j2 = self.integrals.tables(self.covariance(Q, R), K)
        u = np.concatenate([v, -np.asarray(self.v_teacher, float)])
        lr = self.lr(t)
        dQ = np.zeros_like(Q)
        dR = np.zeros_like(R)
        dv = np.zeros_like(v)
        if self.train_W:
            drift = i3 @ u  # (K, P): E[sigma'(lambda_i) x_b Delta]
            dR = -lr * v[:, None] * drift[:, K:] - lr * self.wd_W * R
            first = v[:, None] * drift[:, :K]
            second = np.einsum("ikac,a,c->ik", i4, u, u) + self.noise**2 * j2
            dQ = (-lr * (first + first.T) + lr**2 * np.outer(v, v) * second
                  - 2 * lr * self.wd_W * Q + 2 * lr * self.temperature * self.d * np.eye(K))
        if self.train_a:
            dv = -lr * self.output_scale**2 * (i2[:K] @ u) - lr * self.wd_a * v
        return dQ, dR, dv

    def test_mse(self, Q: np.ndarray, R: np.ndarray, v: np.ndarray) -> float:
        """E[(f - y)^2] = 2 eps_g + zeta^2 (twolayer's test_mse, label noise included)."""
        return 2.0 * generalisation_error(self.integrals, Q, R, self.T, v, self.v_teacher) \
            + self.noise**2


def generalisation_error(integrals: GaussianIntegrals, Q: np.ndarray, R: np.ndarray,
                         T: np.ndarray, v: np.ndarray, v_teacher: np.ndarray) -> float:
    """eps_g = (1/2) E[(f(x) - y_clean(x))^2] = (1/2) u^T I2 u with u = (v, -v*).

    Closed form for erf (Saad & Solla 1995): (1/pi) sum_ab u_a u_b arcsin(C_ab / sqrt((1 +
    C_aa)(1 + C_bb))) with C the covariance of the preactivations (scaled to erf(. / sqrt 2)).
    """
    i2 = integrals.i2_table(np.block([[Q, R], [R.T, T]]), Q.shape[0])
    u = np.concatenate([np.asarray(v, float), -np.asarray(v_teacher, float)])
    return float(0.5 * u @ i2 @ u)


@dataclass(frozen=True)
class OnlineSGDSolution:
    """Order parameters along the ODE's solution at the requested times.

    Attributes
    ----------
    t : (n,) array
        Times t = k b / d.
    Q : (n, K, K) array
    R : (n, K, M) array
    v : (n, K) array
        Effective second layer scale * a.
    test_mse : (n,) array
        E[(f - y)^2], label noise included.
    eg : (n,) array
        eps_g = (test_mse - zeta^2) / 2.
    success : bool
    message : str
    """

    t: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    test_mse: np.ndarray
    eg: np.ndarray
    success: bool
    message: str


def integrate_online_sgd(problem: OnlineSGDProblem, Q0: np.ndarray, R0: np.ndarray,
                         v0: np.ndarray, times: Sequence[float], *, rtol: float = 1e-8,
                         atol: float = 1e-11, method: str = "RK45") -> OnlineSGDSolution:
    """Integrate the ODEs from (Q0, R0, v0) with :func:`scipy.integrate.solve_ivp` (adaptive)
    and return the order parameters and the test error at ``times`` (increasing, >= 0).

    Parameters
    ----------
    Q0 : (K, K) array
        W_0 W_0^T.
    R0 : (K, M) array
        W_0 B^T.
    v0 : (K,) array
        scale * a_0.
    times : sequence of float
        Output times t = k b / d.
    """
    Q0 = np.asarray(Q0, float)
    R0 = np.asarray(R0, float)
    v0 = np.asarray(v0, float)
    K, M = R0.shape
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times.size == 0 or np.any(np.diff(times) < 0) or times[0] < 0:
        raise ValueError("times must be a non-empty increasing sequence of times >= 0")

    def unpack(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Q = y[: K * K].reshape(K, K)
        return 0.5 * (Q + Q.T), y[K * K: K * K + K * M].reshape(K, M), y[K * K + K * M:]

    def f(t: float, y: np.ndarray) -> np.ndarray:
        dQ, dR, dv = problem.rhs(t, *unpack(y))
        return np.concatenate([dQ.ravel(), dR.ravel(), dv])

    y0 = np.concatenate([Q0.ravel(), R0.ravel(), v0])
    span = (0.0, float(times[-1]))
    if span[1] == 0.0:
        ys = y0[:, None].repeat(times.size, 1)
        success, message = True, "no time to integrate"
    else:
        sol = scipy.integrate.solve_ivp(f, span, y0, method=method, t_eval=times, rtol=rtol,
                                        atol=atol)
        success, message = bool(sol.success), str(sol.message)
        ys = sol.y if sol.success else np.full((y0.size, times.size), np.nan)
    Qs, Rs, vs = zip(*(unpack(ys[:, j]) for j in range(times.size)), strict=True)
    Q, R, v = np.array(Qs), np.array(Rs), np.array(vs)
    mse = np.array([problem.test_mse(Q[j], R[j], v[j]) if success else np.nan
                    for j in range(times.size)])
    return OnlineSGDSolution(times, Q, R, v, mse, 0.5 * (mse - problem.noise**2), success,
                             message)


# ---------------------------------------------------------------------------------------------
# The plateau of the unspecialised phase


def saad_solla_plateau(K: int) -> dict[str, float]:
    """The symmetric fixed point of Saad & Solla (1995) for K = M erf(. / sqrt 2) units, T = I,
    v = v* = 1 (soft committee machine, second layer fixed), no noise, in the limit eta -> 0:
    Q_ii = Q_ik = 1 / (2K - 1), R_im = 1 / sqrt(K (2K - 1)), and
    eps_g = (K / pi) (pi / 6 - K arcsin(1 / (2K))).

    Returns
    -------
    dict with ``Q``, ``C`` (off-diagonal Q), ``R`` and ``eg``.
    """
    q = 1.0 / (2 * K - 1)
    return {"Q": q, "C": q, "R": 1.0 / math.sqrt(K * (2 * K - 1)),
            "eg": K / math.pi * (math.pi / 6 - K * math.asin(1.0 / (2 * K)))}


def _symmetric_point(x: np.ndarray, K: int, M: int) -> tuple[np.ndarray, np.ndarray]:
    q, c, r = x
    Q = np.full((K, K), c) + (q - c) * np.eye(K)
    return Q, np.full((K, M), r)


def plateau_fixed_point(problem: OnlineSGDProblem, K: int, guess: Sequence[float] | None = None
                        ) -> dict[str, float]:
    """The unspecialised (symmetric) fixed point of the ODEs at the problem's learning rate:
    Q_ii = q, Q_ik = c (i != k), R_im = r for all i, m, second layer fixed at v_i = v*_1 (the
    soft committee machine of Saad & Solla), solved by
    :func:`scipy.optimize.root` on the three symmetric components of the right-hand side.

    Returns
    -------
    dict with ``Q``, ``C``, ``R``, ``eg``, ``test_mse`` and ``residual``. Raises RuntimeError
    when the solver does not converge.
    """
    M = len(problem.v_teacher)
    if problem.train_a or K < 2:
        raise ValueError("plateau_fixed_point: the symmetric plateau is for K >= 2 students with "
                         "a fixed second layer")
    v = np.full(K, float(problem.v_teacher[0]))
    x0 = np.array(guess if guess is not None else [0.3, 0.3, 0.4])

    def residual(x: np.ndarray) -> np.ndarray:
        Q, R = _symmetric_point(x, K, M)
        dQ, dR, _ = problem.rhs(0.0, Q, R, v)
        return np.array([dQ[0, 0], dQ[0, 1] if K > 1 else 0.0, dR[0, 0]])

    sol = scipy.optimize.root(residual, x0, tol=1e-13)
    res = float(np.max(np.abs(residual(sol.x))))
    # root may report slow progress at an already exact root: judge by the residual
    if res > 1e-9:
        raise RuntimeError(f"plateau_fixed_point did not converge: {sol.message} (residual "
                           f"{res:.2e})")
    Q, R = _symmetric_point(sol.x, K, M)
    mse = problem.test_mse(Q, R, v)
    return {"Q": float(sol.x[0]), "C": float(sol.x[1]), "R": float(sol.x[2]),
            "eg": 0.5 * (mse - problem.noise**2), "test_mse": mse, "residual": res}


def unstable_rate(problem: OnlineSGDProblem, K: int, fixed_point: dict[str, float],
                  h: float = 1e-6) -> float:
    """Largest real part of the eigenvalues of the Jacobian of (dQ, dR)/dt at the symmetric
    fixed point (central finite differences in all K(K+1)/2 + K M free components; second layer
    fixed). Escape from the plateau from a perturbation of size delta takes
    log(1 / delta) / rate + O(1) time: ``1 / rate`` is the slope of the plateau length against
    log(1 / initial overlap)."""
    M = len(problem.v_teacher)
    Q, R = _symmetric_point(np.array([fixed_point["Q"], fixed_point["C"], fixed_point["R"]]),
                            K, M)
    v = np.full(K, float(problem.v_teacher[0]))
    iu = np.triu_indices(K)
    x0 = np.concatenate([Q[iu], R.ravel()])

    def F(x: np.ndarray) -> np.ndarray:
        Qx = np.zeros((K, K))
        Qx[iu] = x[: len(iu[0])]
        Qx = Qx + np.triu(Qx, 1).T
        dQ, dR, _ = problem.rhs(0.0, Qx, x[len(iu[0]):].reshape(K, M), v)
        return np.concatenate([dQ[iu], dR.ravel()])

    J = np.empty((x0.size, x0.size))
    for j in range(x0.size):
        e = np.zeros_like(x0)
        e[j] = h
        J[:, j] = (F(x0 + e) - F(x0 - e)) / (2 * h)
    return float(np.max(np.linalg.eigvals(J).real))
