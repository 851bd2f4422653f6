"""Parts of ``benchmarks/bench_cluster.py``: statistics, event-line parsing, nftables
counters, the per-system process adapters and the kinship member driver."""
