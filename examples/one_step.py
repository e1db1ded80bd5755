"""One giant gradient step (Ba et al. 2022) from the Python API.

A tanh single-index teacher, a relu student of width N = 2d, one full-batch step on W with
eta = c sqrt(N), then ridge on the second layer over a lambda grid with fresh data, beside random
features (no step) and the best linear model. Prints the errors, with the Gaussian-equivalence
prediction for the run's W (measurement ridge_theory), and the top singular values of W_0 and W_1:
after the step, an outlier separates from the Marchenko-Pastur bulk.

Run:  python examples/one_step.py [--d 300] [--seed 0]
"""

import argparse

import numpy as np

from twolayer import RunConfig, run_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=300)
    parser.add_argument("--eta", type=float, default=2.0, help="c in eta = c sqrt(N)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    d = args.d
    config = RunConfig.model_validate(
        {
            "teacher": {"name": "single_index", "d": d, "link": "tanh", "noise": 0.1},
            "student": {"N": 2 * d, "activation": "relu", "a_scale": 1.0},
            "train": {
                "protocol": "giant_steps",
                "n": 3 * d,
                "steps": [{"eta": {"c": args.eta, "alpha": 0.5, "S": "N"}}],
            },
            "readout": {
                "n": 3 * d,
                "lambdas": [1e-4, 1e-3, 1e-2, 1e-1, 1.0],
                "baselines": ["random_features", "linear"],
            },
            "evaluate": {"n_test": 10_000},
            # the theory beside the measurement: Gaussian equivalence given W (and W_0)
            "measure": [{"name": "ridge_theory", "random_features": True}],
        }
    )
    result = run_once(config, seed=args.seed)
    print(f"one giant step, d = {d}, N = {2 * d}, n = {3 * d}, seed = {args.seed}")
    theory = {"readout": "ridge_theory.test_mse", "random_features": "ridge_theory.rf_test_mse"}
    print(f"{'model':<18}{'test MSE':>10}{'best lambda':>13}{'theory (GE given W)':>21}")
    for model in ("readout", "random_features", "linear"):
        mse = result.scalars[f"{model}.test_mse"]
        lam = result.scalars[f"{model}.best_lambda"]
        pred = f"{result.scalars[theory[model]]:.4f}" if model in theory else ""
        print(f"{model:<18}{mse:>10.4f}{lam:>13.0e}{pred:>21}")
    print(f"Bayes risk (noise^2)  {result.scalars['teacher.bayes_risk']:.4f}")
    W0, W1 = result.student_init.W, result.student.W
    edge = 1 + np.sqrt(W0.shape[0] / W0.shape[1])
    print(f"top singular values of W_0: {np.round(np.linalg.svd(W0, compute_uv=False)[:3], 3)}")
    print(f"top singular values of W_1: {np.round(np.linalg.svd(W1, compute_uv=False)[:3], 3)}")
    print(f"Marchenko-Pastur edge 1 + sqrt(N/d) = {edge:.3f}")


if __name__ == "__main__":
    main()
