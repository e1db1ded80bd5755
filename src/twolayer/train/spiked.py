"""Spiked random features (Cui, Pesce, Dandi, Krzakala, Lu, Zdeborová & Loureiro 2024): the
first layer after one giant step replaced by its leading-order model

    W = c_W W_0 + r 1 v^T,    v = gamma beta + rho u,  rho = sqrt(1 - gamma^2),

where W_0 (N, d) is the student's first layer at initialisation (Cui et al.: unit rows, i.e.
``student.w_init: sphere``), 1 the all-ones vector of R^N, beta the teacher's unit target
direction and u a unit vector orthogonal to beta drawn from the run's random stream ``"spike"``
(so ||v|| = 1 and <v, beta> = gamma exactly). The second layer is left as it is: the readout
refits it.

(r, c_W, gamma) are given directly or derived from the step that the model stands for: a
learning rate eta_tilde in Cui et al.'s scaling (W_1 = W_0 + eta_tilde N G^T, G the gradient of
(1/2 n_0) sum (y - f)^2 with f = a^T sigma(W x)/sqrt(N), a_0 = 1/sqrt(N)) on n_0 = alpha_0 d
samples:

    r = eta_tilde mu_1 sqrt(g2 / alpha_0 + c_1^2),
    c_W = sqrt((1 + eta_tilde m_y e_2)^2 + eta_tilde^2 g2 s2 / alpha_0),
    gamma = c_1 / sqrt(g2 / alpha_0 + c_1^2),

with mu_1 = E[z sigma(z)], s2 = E(sigma'(z) - mu_1)^2, e_2 = E sigma''(z) of the student and
m_y = E y, c_1 = E[z g(z)],
g2 = E[y^2] = E g(z)^2 + noise^2 of the teacher (Cui et al. have no label noise; with noise the
gradient's data term X^T y / n_0 has squared norm c_1^2 + E[y^2] d / n_0, hence E[y^2]).
The formulas are those of :func:`twolayer.theory.spiked_rf.spiked_rf_parameters`, which this
protocol calls (the theory layer imports nothing of training, so the dependency is one-way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from twolayer.activations import Activation
from twolayer.backend import DEFAULT_BACKEND, Backend, RunStreams
from twolayer.config import ProtocolConfig
from twolayer.student import TwoLayer
from twolayer.teachers import Teacher
from twolayer.theory.spiked_rf import SpikedRFParameters, spiked_rf_parameters_for
from twolayer.train.protocol import TrainContext, register_protocol
from twolayer.train.result import SpikedInfo, TrainResult

#: The named random stream of a run from which the spike's orthogonal part u is drawn.
SPIKE_STREAM = "spike"


@dataclass(frozen=True)
class SpikedOptions:
    """What the ``spiked`` protocol needs: either ``params`` (r, c_W, gamma given) or
    ``eta_tilde`` and ``alpha0`` (derived from the student and the teacher)."""

    params: SpikedRFParameters | None = None
    eta_tilde: float | None = None
    alpha0: float | None = None

    def __post_init__(self) -> None:
        derived = self.eta_tilde is not None and self.alpha0 is not None
        if (self.params is None) == (not derived):
            raise ValueError("give either params, or eta_tilde and alpha0 (not both)")

    def resolve(self, student: TwoLayer, teacher: Teacher) -> SpikedRFParameters:
        """The spike parameters of this run (derived ones use the student's activation and the
        teacher's link and noise, so the teacher must be a single-index one)."""
        if self.params is not None:
            return self.params
        link = getattr(teacher, "link", None)
        directions = teacher.directions
        if not isinstance(link, Activation) or directions is None or len(directions) != 1:
            raise ValueError(
                "train.protocol 'spiked' with eta_tilde/alpha0 derives (r, c_w, gamma) from the "
                f"teacher's link: it needs a single-index teacher, got {type(teacher).__name__}"
            )
        assert self.eta_tilde is not None and self.alpha0 is not None  # by __post_init__
        return spiked_rf_parameters_for(
            self.eta_tilde, self.alpha0, student.activation, link, getattr(teacher, "noise", 0.0)
        )


def spike_direction(
    target: np.ndarray | None, gamma: float, d: int, rng: np.random.Generator
) -> np.ndarray:
    """The unit spike direction v = gamma beta + rho u, shape (d,).

    Parameters
    ----------
    target : (d,) array or None
        The teacher direction beta (normalised here); None is allowed only with gamma = 0.
    gamma : float
        <v, beta>, in [-1, 1].
    d : int
    rng : numpy Generator
        Draws u: a standard Gaussian vector, its component along beta removed, normalised.
    """
    g = rng.standard_normal(d)
    if target is None:
        if gamma != 0.0:
            raise ValueError(
                f"spike alignment gamma = {gamma} needs a teacher with one target direction"
            )
        return g / np.linalg.norm(g)
    beta = np.asarray(target, dtype=np.float64)
    beta = beta / np.linalg.norm(beta)
    u = g - (g @ beta) * beta
    u /= np.linalg.norm(u)
    rho = math.sqrt(max(0.0, 1.0 - gamma**2))
    v = gamma * beta + rho * u
    return v / np.linalg.norm(v)  # exactly unit up to rounding


def spiked_features(
    student: TwoLayer,
    teacher: Teacher,
    streams: RunStreams,
    options: SpikedOptions,
    *,
    backend: Backend = DEFAULT_BACKEND,
) -> TrainResult:
    """Replace the student's first layer by the sRF model W = c_W W_0 + r 1 v^T.

    Parameters
    ----------
    student : TwoLayer
        At initialisation: W_0 (N, d) is its first layer (unit rows in Cui et al.'s setting).
    teacher : Teacher
        Gives the target direction beta = ``teacher.directions[0]`` (a single direction is
        required unless gamma = 0) and, for derived parameters, the link and noise.
    streams : RunStreams
        u is drawn from the stream ``"spike"`` (no training data is drawn).
    options : SpikedOptions

    Returns
    -------
    TrainResult
        The student with the new W (a unchanged), no batches, one trajectory row with r,
        c_w, gamma and the realised overlap <v, beta> (stored as ``train.final_*``), and a
        :class:`~twolayer.train.result.SpikedInfo` holding the parameters and v.
    """
    params = options.resolve(student, teacher)
    directions = teacher.directions
    if directions is not None and len(directions) != 1 and params.gamma != 0.0:
        raise ValueError(
            f"spike alignment gamma = {params.gamma} needs a teacher with one target direction, "
            f"this one has {len(directions)}"
        )
    target = None if directions is None or len(directions) != 1 else np.asarray(directions[0])
    v = spike_direction(target, params.gamma, student.d, streams.generator(SPIKE_STREAM))
    overlap = float(v @ (target / np.linalg.norm(target))) if target is not None else 0.0
    W = params.c_w * student.W + params.r * backend.asarray(v)[None, :]
    row: dict[str, Any] = {
        "step": 0,
        "r": params.r,
        "c_w": params.c_w,
        "gamma": params.gamma,
        "overlap": overlap,
    }
    return TrainResult(student.replace(W=W), [row], info=SpikedInfo(params, v))


class SpikedConfig(ProtocolConfig):
    """Spiked random features (Cui et al. 2024): W = c_w W_0 + r 1 v^T with ||v|| = 1 and
    <v, beta> = gamma, the model of the first layer after one giant step; no training data.

    Give (r, c_w, gamma), or (eta_tilde, alpha0) to derive them from the step the model stands
    for (W_1 = W_0 + eta_tilde N G^T on n_0 = alpha0 d samples, Cui et al.'s scaling; needs a
    single-index teacher). W_0 is the student's init (unit rows: ``w_init: sphere``); the part
    of v orthogonal to beta is drawn from the run's stream "spike". See twolayer.train.spiked.
    """

    protocol: Literal["spiked"] = Field("spiked", description="selects this protocol")
    r: float | None = Field(None, description="spike strength (with c_w and gamma)")
    c_w: PositiveFloat | None = Field(None, description="bulk scale of W_0 (with r and gamma)")
    gamma: float | None = Field(
        None, ge=-1.0, le=1.0, description="overlap <v, beta> of the spike with the target"
    )
    eta_tilde: NonNegativeFloat | None = Field(
        None, description="derive r, c_w, gamma from this step size (with alpha0)"
    )
    alpha0: PositiveFloat | None = Field(
        None, description="n_0 / d of the step's batch (with eta_tilde)"
    )

    @model_validator(mode="after")
    def _check_form(self) -> SpikedConfig:
        direct = {"r": self.r, "c_w": self.c_w, "gamma": self.gamma}
        derived = {"eta_tilde": self.eta_tilde, "alpha0": self.alpha0}
        given_direct = [k for k, v in direct.items() if v is not None]
        given_derived = [k for k, v in derived.items() if v is not None]
        if given_direct and given_derived:
            raise ValueError(
                f"give either r, c_w, gamma or eta_tilde, alpha0, not both (got "
                f"{', '.join(given_direct + given_derived)})"
            )
        if not given_direct and not given_derived:
            raise ValueError("give r, c_w and gamma, or eta_tilde and alpha0")
        if given_direct and len(given_direct) < 3:
            missing = [k for k in direct if k not in given_direct]
            raise ValueError(f"with {', '.join(given_direct)} also give {', '.join(missing)}")
        if given_derived and len(given_derived) < 2:
            missing = [k for k in derived if k not in given_derived]
            raise ValueError(f"with {given_derived[0]} also give {missing[0]}")
        self.build()  # validates the values (finite r)
        return self

    def build(self) -> SpikedOptions:
        if self.r is not None and self.c_w is not None and self.gamma is not None:
            return SpikedOptions(SpikedRFParameters(self.r, self.c_w, self.gamma))
        return SpikedOptions(eta_tilde=self.eta_tilde, alpha0=self.alpha0)


@register_protocol("spiked", SpikedConfig)
def run_spiked(config: SpikedConfig, ctx: TrainContext) -> TrainResult:
    """Spiked random features: W = c_W W_0 + r 1 v^T (:func:`spiked_features`)."""
    return spiked_features(ctx.student, ctx.teacher, ctx.streams, config.build(),
                           backend=ctx.backend)
