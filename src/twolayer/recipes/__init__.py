"""Recipes: one spec per phenomenon of the literature, listed by ``twolayer recipes``."""

from typing import Any

from twolayer.registry import Registry

RECIPES: Registry[Any] = Registry("recipe")

__all__ = ["RECIPES"]
