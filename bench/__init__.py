"""The benchmark suite (`bench/run`); see README.md."""
