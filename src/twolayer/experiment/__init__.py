"""The experiment engine: specs, sweeps, the store, executors and the driver.

Public API::

    spec = load_spec("examples/one_step.yaml")     # or a dict
    result = run_spec(spec, jobs=2)                 # writes <name>.sqlite
    frame = load("one_step.sqlite")                 # pandas DataFrame, one row per run
    arrays = load_arrays("one_step.sqlite", run_id)
"""

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
from twolayer.experiment.runner import Progress, SweepResult, plan_groups, run_spec, select_todo
from twolayer.experiment.spec import (
    ExecutorConfig,
    RunSpec,
    Spec,
    dump_spec,
    format_path,
    load_spec,
    load_spec_with_runs,
    parse_key,
    run_id,
)
from twolayer.experiment.store import Store, check_store_file

__all__ = [
    "DaskExecutor",
    "ExecutorConfig",
    "LocalExecutor",
    "Problem",
    "Progress",
    "Record",
    "RunSpec",
    "SerialExecutor",
    "Spec",
    "SpecError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "SweepResult",
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
    "run_id",
    "run_spec",
    "select_todo",
]
