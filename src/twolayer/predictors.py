"""Predictors of an evaluation: each is fitted on the trained student (and the readout batch) and
predicts a chunk of inputs; the pipeline computes their test and training errors.

One class per predictor, selected by name (:data:`BASELINES` for the readout's baselines,
``readout.baselines`` in a spec):

========================  ========================================================  ==========
name                      prediction on X (n, d)                                    fitted on
========================  ========================================================  ==========
``network``               the trained network itself, scale * sigma(X W^T) a        --
``readout``               ridge readout of the trained features: scale * F(X) A     readout batch
``random_features``       the same readout of the student at initialisation         readout batch
``linear``                linear ridge on x (:class:`~twolayer.train.LinearRidge`)  readout batch
``kernel``                kernel ridge with the conjugate kernel at init            readout batch
========================  ========================================================  ==========

A readout-type prediction has one column per lambda, (n, L); a stack of S students gives a
leading S axis. Every predictor says whose features it reads (:attr:`Predictor.students`), so
the pipeline can evaluate a held test set at once when all of them are held, and where its
training error is measured (:attr:`Predictor.train_set`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from twolayer.student import TwoLayer
from twolayer.train.readout import KernelRidge, LinearRidge

#: ``features(student, X)``: sigma(X W^T) of a student, computed once per chunk (a memo).
Features = Callable[[TwoLayer, Any], Any]


@dataclass
class FitData:
    """What a readout-type predictor is fitted from.

    Attributes
    ----------
    student, student0 : TwoLayer
        The trained student and the student at initialisation.
    X, y : arrays
        The readout batch, (n, d) and (n,).
    lambdas : (L,) array
        The ridge penalties.
    penalty : {"mean", "sum"}
    w_scale : float
        Row norm of W_0 (the conjugate kernel's scale).
    features : Features
        The evaluation's feature memo.
    ridge : callable
        ``ridge(tag, student)`` -> (p, L) ridge coefficients of ``student``'s features on the
        readout batch (the pipeline's: through its readout pool when it has one, so that a
        learning curve shares features and Gram matrices).
    """

    student: TwoLayer
    student0: TwoLayer
    X: Any
    y: Any
    lambdas: Any
    penalty: str
    w_scale: float
    features: Features
    ridge: Callable[[str, TwoLayer], Any]


class Predictor:
    """A fitted predictor: ``predict(X)`` on a chunk of inputs.

    Attributes
    ----------
    students : tuple of TwoLayer
        The students whose features ``predict`` reads (a held test set is evaluated at once
        only when every one's test features are held).
    chunked : bool
        True when a prediction must stay chunked whatever is held (the kernel: an
        n_test x n kernel matrix).
    train_set : (X, y) or None
        The data its training error is measured on.
    """

    students: tuple[TwoLayer, ...] = ()
    chunked: ClassVar[bool] = False
    train_set: tuple[Any, Any] | None = None

    def predict(self, X: Any) -> Any:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


class Network(Predictor):
    """The trained network itself; its training error on the first training batch (or, for a
    protocol without one, on the readout batch)."""

    def __init__(self, student: TwoLayer, features: Features,
                 train_set: tuple[Any, Any] | None) -> None:
        self.student, self.features, self.train_set = student, features, train_set
        self.students = (student,)

    def predict(self, X: Any) -> Any:
        return self.student.output(self.features(self.student, X))


class FeatureReadout(Predictor):
    """Ridge readout of a student's features: scale * F(X) A, A of shape (N, L)."""

    def __init__(self, student: TwoLayer, coef: Any, features: Features,
                 train_set: tuple[Any, Any]) -> None:
        self.student, self.coef, self.features, self.train_set = student, coef, features, train_set
        self.students = (student,)

    def predict(self, X: Any) -> Any:
        return self.student.scale * (self.features(self.student, X) @ self.coef)

    @classmethod
    def fit(cls, data: FitData, coef: Any) -> FeatureReadout:
        """The readout of the trained student, with the coefficients already solved."""
        return cls(data.student, coef, data.features, (data.X, data.y))


class RandomFeatures(FeatureReadout):
    """Baseline ``random_features``: the same ridge readout on the student at initialisation."""

    @classmethod
    def fit(cls, data: FitData, coef: Any = None) -> RandomFeatures:
        coef = data.ridge("init", data.student0) if coef is None else coef
        return cls(data.student0, coef, data.features, (data.X, data.y))


class Linear(Predictor):
    """Baseline ``linear``: ridge regression on x."""

    def __init__(self, model: LinearRidge, train_set: tuple[Any, Any]) -> None:
        self.model, self.train_set = model, train_set

    def predict(self, X: Any) -> Any:
        return self.model.predict(X)

    @classmethod
    def fit(cls, data: FitData) -> Linear:
        return cls(LinearRidge.fit(data.X, data.y, data.lambdas, data.penalty), (data.X, data.y))


class Kernel(Predictor):
    """Baseline ``kernel``: kernel ridge with the conjugate kernel of the student at init."""

    chunked = True

    def __init__(self, model: KernelRidge, train_set: tuple[Any, Any]) -> None:
        self.model, self.train_set = model, train_set

    def predict(self, X: Any) -> Any:
        return self.model.predict(X)

    @classmethod
    def fit(cls, data: FitData) -> Kernel:
        model = KernelRidge.fit(data.X, data.y, data.lambdas, data.student0.activation,
                                w_scale=data.w_scale, penalty=data.penalty)
        return cls(model, (data.X, data.y))


#: The readout's baselines by name (``readout.baselines``), each fitted with ``fit(data)``.
BASELINES: dict[str, Callable[[FitData], Predictor]] = {
    "random_features": RandomFeatures.fit,
    "linear": Linear.fit,
    "kernel": Kernel.fit,
}
