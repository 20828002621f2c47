"""Benchmark suite of segret-hf: SegRet's cost (parameters, FLOPs, latency, throughput, memory, training step)
measured side by side with transformers' SegFormer on the same inputs, in the same process.

Entry point: `python benchmarks/run_benchmarks.py --help`.
"""
