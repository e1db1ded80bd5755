"""Teachers (data models). Adding one: a module with a Teacher subclass and a TEACHERS.add line."""

from twolayer.teachers.base import (
    TEACHERS,
    Teacher,
    TeacherStack,
    get_teacher,
    random_orthonormal,
)
from twolayer.teachers.clusters import XOR, GaussianMixture, xor_clean_bayes_error
from twolayer.teachers.functional import Functional
from twolayer.teachers.index import InputModel, MultiIndex, SingleIndex, as_activation

__all__ = [
    "TEACHERS",
    "XOR",
    "Functional",
    "GaussianMixture",
    "InputModel",
    "MultiIndex",
    "SingleIndex",
    "Teacher",
    "TeacherStack",
    "as_activation",
    "get_teacher",
    "random_orthonormal",
    "xor_clean_bayes_error",
]
