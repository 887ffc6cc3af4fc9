"""The commands that write each kind of record, shown in a panel whose records are missing.

They name the experiments' own CLIs at their CPU-quick scale; `python -m figures.poster
--run-missing quick` runs the same experiments through their Python APIs.
"""
TRAIN_COMMAND = "python -m realdata.sweep --recipe quick --out results"
SPHERES_COMMAND = "python -m simulate.spheres --preset quick --out results"
LINEAR_COMMAND = "python -m simulate.linear --preset quick --out results"
ONE_STEP_COMMAND = "python -m simulate.one_step --out results"
POSTER_COMMAND = "python -m figures.poster --run-missing quick"
