"""robustxai: how explainable are robust CNNs."""
import os

__version__ = "0.1.0"

# torch's OpenMP threads spin while they wait for work (libgomp's default). On a busy machine (a shared
# cluster node, a laptop running other jobs) spinning threads take the cores the working ones need:
# on 2 loaded cores a gradient pass ran 4-9x slower than with passive waiting (benchmarks/omp_wait.py).
# Read when torch loads its OpenMP runtime, so it is set before anything here imports torch; a value the
# user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
