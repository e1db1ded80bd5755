"""What a training protocol returns (:class:`TrainResult`), typed, for one student or a stack.

Measurements and recipes read what happened during training from here -- the step sizes used,
the students after the steps they asked for, the protocol's own random draws -- instead of
running the protocol again, re-drawing its streams or re-deriving a step size from the config
(docs/extending.md, "a protocol").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twolayer.student import TwoLayer
from twolayer.train.schedule import DivergenceError


@dataclass
class TrainResult:
    """The trained student and what happened on the way.

    Attributes
    ----------
    student : TwoLayer
        The trained student (a stack: W of shape (S, N, d)).
    trajectory : list of dict
        Rows recorded during training (``step`` and the protocol's columns); stored by the
        engine, and its last row as ``train.final_*`` scalars.
    batches : dict[int, (X, y)]
        The training batches by step index ((n, d) and (n,); a stack: (S, n, d), (S, n)).
    etas : list of float
        The step size of each step actually taken, in order (eta_k of step k, the protocol's
        own evaluation of eta = c S^alpha, decays included); empty without steps.
    checkpoints : dict[int, TwoLayer]
        The student after step k (W_k; k = 0 is the initial student) for the k a measurement
        asked for (:attr:`twolayer.measure.Measurement.checkpoints`); empty otherwise.
    info : object or None
        The protocol's own typed record (:class:`GiantStepsInfo`, :class:`GDInfo`,
        :class:`StagesInfo`, :class:`SpikedInfo`, or a plugin's), including the auxiliary
        random draws it made (the sRF spike direction).
    diverged : dict[int, DivergenceError]
        For a stack: the members that diverged (the others trained on). Empty for one student,
        which raises DivergenceError instead.
    """

    student: TwoLayer
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    batches: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    etas: list[float] = field(default_factory=list)
    checkpoints: dict[int, TwoLayer] = field(default_factory=dict)
    info: Any = None
    diverged: dict[int, DivergenceError] = field(default_factory=dict)

    def select(self, index: int | list[int]) -> TrainResult:
        """Member(s) ``index`` of a stacked result: one run's result for an int, a smaller
        stack for a list. Trajectory values that are per member become plain floats for an
        int; values shared by the members (step sizes, ``info`` of a batched protocol) are
        kept as they are. ``diverged`` is left out."""
        student = self.student.replace(W=self.student.W[index], a=self.student.a[index])
        rows = []
        for row in self.trajectory:
            new = {}
            for k, v in row.items():
                if np.ndim(v) > 0:
                    v = np.asarray(v)[index]
                    v = float(v) if isinstance(index, int) else v
                new[k] = v
            rows.append(new)
        return TrainResult(
            student,
            rows,
            {k: (X[index], y[index]) for k, (X, y) in self.batches.items()},
            list(self.etas),
            {k: s.replace(W=s.W[index], a=s.a[index]) for k, s in self.checkpoints.items()},
            self.info,
        )

    @staticmethod
    def stack(results: list[TrainResult]) -> TrainResult:
        """One stacked result from the results of members trained one by one (one config, so
        equal trajectory lengths, keys and batches; anything else raises ValueError). Its
        ``info`` is the list of the members' infos."""
        from twolayer.backend import namespace_of

        student = TwoLayer.stack([r.student for r in results])
        if len({len(r.trajectory) for r in results}) != 1:
            raise ValueError("members of one config recorded trajectories of different lengths")
        rows = []
        for member_rows in zip(*(r.trajectory for r in results), strict=True):
            if len({tuple(row) for row in member_rows}) != 1:
                raise ValueError("members of one config recorded different trajectory columns")
            rows.append({k: np.array([row[k] for row in member_rows]) for k in member_rows[0]})
        if len({tuple(r.batches) for r in results}) != 1:
            raise ValueError("members of one config kept different training batches")
        batches = {}
        for k in results[0].batches:
            xp = namespace_of(results[0].batches[k][0])
            batches[k] = (
                xp.stack([r.batches[k][0] for r in results]),
                xp.stack([r.batches[k][1] for r in results]),
            )
        checkpoints = {
            k: TwoLayer.stack([r.checkpoints[k] for r in results])
            for k in results[0].checkpoints
        }
        return TrainResult(student, rows, batches, list(results[0].etas), checkpoints,
                           [r.info for r in results])


@dataclass(frozen=True)
class GiantStepsInfo:
    """``giant_steps``: how many fresh batches were drawn (streams ("batch", 0..))."""

    fresh_batches: int


@dataclass(frozen=True)
class GDInfo:
    """``gd``: the initial step size eta_0 and the number of steps."""

    eta0: float
    steps: int


@dataclass(frozen=True)
class StagesInfo:
    """``stages``: the number of stages and of steps over all of them, and each stage's own
    :class:`GDInfo`."""

    stages: int
    steps: int
    per_stage: tuple[GDInfo, ...] = ()


@dataclass(frozen=True)
class SpikedInfo:
    """``spiked``: the model's parameters and its spike direction v (d,), the unit vector drawn
    from the run's stream "spike" (:func:`twolayer.train.spiked.spike_direction`)."""

    params: Any  # twolayer.theory.spiked_rf.SpikedRFParameters
    direction: np.ndarray
