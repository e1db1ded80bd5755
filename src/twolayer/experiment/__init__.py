"""The experiment engine: specs, sweeps, the store, executors and the driver.

Public API::

    spec = load_spec("examples/one_step.yaml")     # or a dict
    result = run_spec(spec, jobs=2)                 # writes <name>.sqlite
    frame = load("one_step.sqlite")                 # pandas DataFrame, one row per run
    arrays = load_arrays("one_step.sqlite", run_id)

The names load on first use (``twolayer._lazy``): the command line imports the spec errors and
the store without pandas, SciPy or the simulation code.
"""

from typing import TYPE_CHECKING

from twolayer._lazy import lazy_exports

_EXPORTS = {
    "Problem": "twolayer.experiment.errors",
    "SpecError": "twolayer.experiment.errors",
    "StoreBusyError": "twolayer.experiment.errors",
    "StoreError": "twolayer.experiment.errors",
    "DaskExecutor": "twolayer.experiment.executors",
    "LocalExecutor": "twolayer.experiment.executors",
    "SerialExecutor": "twolayer.experiment.executors",
    "available_cores": "twolayer.experiment.executors",
    "blas_threads_for": "twolayer.experiment.executors",
    "make_executor": "twolayer.experiment.executors",
    "Record": "twolayer.experiment.record",
    "execute_group": "twolayer.experiment.record",
    "execute_run": "twolayer.experiment.record",
    "export": "twolayer.experiment.results",
    "flatten": "twolayer.experiment.results",
    "load": "twolayer.experiment.results",
    "load_arrays": "twolayer.experiment.results",
    "load_trajectory": "twolayer.experiment.results",
    "Progress": "twolayer.experiment.runner",
    "SweepPlan": "twolayer.experiment.runner",
    "SweepResult": "twolayer.experiment.runner",
    "plan_groups": "twolayer.experiment.runner",
    "plan_spec": "twolayer.experiment.runner",
    "run_spec": "twolayer.experiment.runner",
    "select_todo": "twolayer.experiment.runner",
    "SlurmExecutor": "twolayer.experiment.slurm",
    "ExecutorConfig": "twolayer.experiment.spec",
    "RunSpec": "twolayer.experiment.spec",
    "SlurmConfig": "twolayer.experiment.spec",
    "Spec": "twolayer.experiment.spec",
    "dump_spec": "twolayer.experiment.spec",
    "format_path": "twolayer.experiment.spec",
    "load_spec": "twolayer.experiment.spec",
    "load_spec_with_runs": "twolayer.experiment.spec",
    "parse_key": "twolayer.experiment.spec",
    "run_id": "twolayer.experiment.spec",
    "Store": "twolayer.experiment.store",
    "check_store_file": "twolayer.experiment.store",
    "VerifyReport": "twolayer.experiment.verify",
    "verify_store": "twolayer.experiment.verify",
}

__all__ = [
    "DaskExecutor",
    "ExecutorConfig",
    "LocalExecutor",
    "Problem",
    "Progress",
    "Record",
    "RunSpec",
    "SerialExecutor",
    "SlurmConfig",
    "SlurmExecutor",
    "Spec",
    "SpecError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "SweepPlan",
    "SweepResult",
    "VerifyReport",
    "available_cores",
    "blas_threads_for",
    "check_store_file",
    "dump_spec",
    "execute_group",
    "execute_run",
    "export",
    "flatten",
    "format_path",
    "load",
    "load_arrays",
    "load_spec",
    "load_spec_with_runs",
    "load_trajectory",
    "make_executor",
    "parse_key",
    "plan_groups",
    "plan_spec",
    "run_id",
    "run_spec",
    "select_todo",
    "verify_store",
]

__getattr__, __dir__ = lazy_exports(
    __name__, globals(), _EXPORTS,
    ("errors", "executors", "provenance", "record", "reference", "results", "runner", "slurm",
     "spec", "store", "verify"),
)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily
    from twolayer.experiment.errors import Problem, SpecError, StoreBusyError, StoreError
    from twolayer.experiment.executors import (
        DaskExecutor,
        LocalExecutor,
        SerialExecutor,
        available_cores,
        blas_threads_for,
        make_executor,
    )
    from twolayer.experiment.record import Record, execute_group, execute_run
    from twolayer.experiment.results import export, flatten, load, load_arrays, load_trajectory
    from twolayer.experiment.runner import (
        Progress,
        SweepPlan,
        SweepResult,
        plan_groups,
        plan_spec,
        run_spec,
        select_todo,
    )
    from twolayer.experiment.slurm import SlurmExecutor
    from twolayer.experiment.spec import (
        ExecutorConfig,
        RunSpec,
        SlurmConfig,
        Spec,
        dump_spec,
        format_path,
        load_spec,
        load_spec_with_runs,
        parse_key,
        run_id,
    )
    from twolayer.experiment.store import Store, check_store_file
    from twolayer.experiment.verify import VerifyReport, verify_store
