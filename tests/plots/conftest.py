"""Fixtures of the plot tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def drawn_figures(monkeypatch, tmp_path):
    """The figures that ``twolayer.plots.standard`` hands to ``plots.save``, by file stem,
    instead of writing them (PNG and PDF at 300 dpi cost about a second each)."""
    from twolayer.plots import standard

    drawn: dict[str, object] = {}

    def keep(fig, folder, stem):
        drawn[stem] = fig
        return tmp_path / f"{stem}.png"

    monkeypatch.setattr(standard.plots, "save", keep)
    return drawn
