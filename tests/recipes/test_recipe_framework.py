"""The claim standard's pieces: claim kinds and a bound's slack; fresh seeds for a recipe."""

import pytest

from twolayer.recipes.base import Claim, claim_close, claim_greater, claim_less, claim_true
from twolayer.recipes.reproduce import output_folder, with_seeds


def test_claim_kinds_and_bound_slack():
    eq = claim_close("a", "x", 1.02, 1.0, atol=0.05, source="closed form", derivation="3 SE")
    assert eq.kind == "equality" and eq.passed and eq.slack is None
    assert eq.as_row()["source"] == "closed form"
    less = claim_less("b", "x", 0.8, 1.0)
    assert less.kind == "bound" and less.passed and less.slack == pytest.approx(0.2)
    greater = claim_greater("c", "x", 1.5, 2.0)
    assert not greater.passed and greater.slack == pytest.approx(-0.25)
    assert claim_true("d", "x", 1.0, True, "1 < 2", kind="ordering").kind == "ordering"
    with pytest.raises(ValueError, match="kind"):
        Claim("e", "x", 1.0, "1", "exact", True, kind="vibes")


def test_fresh_seeds_keep_the_count_and_the_outputs_apart(tmp_path):
    assert with_seeds({"seeds": 3}, 100)["seeds"] == [100, 101, 102]
    assert with_seeds({"seeds": [0, 5]}, 7)["seeds"] == [7, 8]
    assert with_seeds({}, 4)["seeds"] == [4]
    with pytest.raises(ValueError):
        with_seeds({"seeds": 2}, -1)
    assert output_folder("x", True, tmp_path, 100).name == "x-quick-seeds100"
    assert output_folder("x", False, tmp_path).name == "x"
