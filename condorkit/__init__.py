"""condorkit: run one program over every row of a manifest, locally or on an HTCondor pool.

The package owns nothing itself; see the modules: manifest, chunking, render, bundle, submit,
monitor, local, dag, aggregate, cli.
"""

__version__ = "0.1.0"
