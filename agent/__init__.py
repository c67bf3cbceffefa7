"""The edgebench device agent: runs on the board, needs only the standard library, numpy and
the runtime it benchmarks, and never imports the harness."""

__version__ = "0.1.0"
