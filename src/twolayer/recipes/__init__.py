"""Recipes: one spec per phenomenon of the literature, listed by ``twolayer recipes`` and re-created
by ``twolayer reproduce NAME``. Adding one: ``NAME.yaml`` plus a module defining ``RECIPE``, and
its line in ``_MODULES`` below. How to write one, and the standards every recipe meets (claims
with stated tolerances, quick mode <= ~40 s on 2 cores, docs/recipes/NAME.md, a slow test
asserting the quick-mode claims): docs/recipes/README.md."""

from importlib import import_module

from twolayer.recipes.base import Claim, Recipe, RecipeData
from twolayer.registry import Registry

RECIPES: Registry[Recipe] = Registry("recipe")

_MODULES = (
    "one_step_spike",
    "polynomial_spikes",
    "two_step",
    "random_feature_amplification",
    "rf_sgd_double_descent",
    "adversarial_one_step",
    "local_regularized",
    "early_stage",
    "mean_field_langevin",
    "generalization_vs_n",
    "function_space",
    "spiked_random_features",
    "online_sgd_plateau",
)

for _module in _MODULES:
    _recipe = import_module(f"twolayer.recipes.{_module}").RECIPE
    RECIPES.add(_recipe.name, _recipe)

__all__ = ["RECIPES", "Claim", "Recipe", "RecipeData"]
