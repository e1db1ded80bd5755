"""spiked-random-features: the YAML's fixed (c_W, gamma) of the r sweep are those of its
(eta_tilde, alpha0); quick mode (d = p = 300, 3 seeds): every claim holds on fresh seeds
1000-1002, not the calibration seeds 200-211 (tolerances stated and justified in the recipe
module)."""

import pytest
from recipe_checks import check_quick_mode

from twolayer.activations import get_activation
from twolayer.experiment import load
from twolayer.recipes import RECIPES
from twolayer.recipes.base import RecipeData
from twolayer.recipes.spiked_random_features import dense_theory, parts, run_spectra
from twolayer.theory.spiked_rf import SpikedRFParameters, spiked_rf_parameters_for


@pytest.mark.parametrize("quick", [False, True])
def test_r_sweep_uses_the_matching_bulk_scale_and_alignment(quick):
    spec = RECIPES.get("spiked-random-features").spec(quick)
    trains = spec["zip"]["train"]
    derived = [t for t in trains if t["protocol"] == "spiked" and "eta_tilde" in t]
    sweep = [t for t in trains if t["protocol"] == "spiked" and "r" in t]
    nets = [t for t in trains if t["protocol"] == "giant_steps"]
    assert derived and sweep and nets
    eta, alpha0 = derived[0]["eta_tilde"], derived[0]["alpha0"]
    expected = spiked_rf_parameters_for(eta, alpha0, get_activation(spec["student"]["activation"]),
                                    get_activation(spec["teacher"]["link"]))
    for t in sweep:
        assert t["c_w"] == pytest.approx(expected.c_w, abs=1e-12)
        assert t["gamma"] == pytest.approx(expected.gamma, abs=1e-12)
    # the network is the step the sRF stands for: n_0 = alpha0 d, eta = eta_tilde * N
    d = spec["teacher"]["d"]
    for t in nets:
        assert t["n"] == alpha0 * d
        assert t["steps"][0]["eta"] == {"c": eta, "alpha": 1.0, "S": "N"}
    assert spec["student"]["a_scale"] == pytest.approx(spec["student"]["N"] ** -0.5)


@pytest.mark.slow
def test_spiked_random_features_quick(tmp_path):
    result = check_quick_mode("spiked-random-features", tmp_path, figures=1, seeds=1000)
    # the figures' theory curves are computed for the runs' W_0 rebuilt from their seeds: at the
    # runs' own points they must give the values the runs' measurement stored
    store = result.out / "results.sqlite"
    data = RecipeData(load(store), store, True, RECIPES.get("spiked-random-features").spec(True))
    _, srf, _ = parts(data)
    for _, row in srf.iloc[::3].iterrows():
        params = SpikedRFParameters(row["spiked_rf_theory.r"], row["spiked_rf_theory.c_w"],
                                    row["spiked_rf_theory.gamma"])
        spectrum = run_spectra(data, [int(row["seed"])], params.gamma, params.c_w)[0]
        value = dense_theory(data, spectrum, [params], [row["alpha"]])[0]
        assert value == pytest.approx(row["spiked_rf_theory.test_mse"], rel=1e-6)
