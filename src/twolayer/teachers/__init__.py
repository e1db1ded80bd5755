"""Teachers (data models). Adding one: a module with a Teacher subclass and a TEACHERS.add line."""

from twolayer.teachers.base import (
    SAMPLE_BLOCK,
    TEACHERS,
    SampleLabels,
    Teacher,
    TeacherStack,
    get_teacher,
    preprocess_labels,
    random_orthonormal,
    sample_blocks,
)
from twolayer.teachers.clusters import XOR, GaussianMixture, xor_clean_bayes_error
from twolayer.teachers.functional import Functional
from twolayer.teachers.index import InputModel, MultiIndex, SingleIndex, as_activation

__all__ = [
    "SAMPLE_BLOCK",
    "TEACHERS",
    "XOR",
    "Functional",
    "GaussianMixture",
    "InputModel",
    "MultiIndex",
    "SampleLabels",
    "SingleIndex",
    "Teacher",
    "TeacherStack",
    "as_activation",
    "get_teacher",
    "preprocess_labels",
    "random_orthonormal",
    "sample_blocks",
    "xor_clean_bayes_error",
]
