"""Benchmarks of the control plane against the provider's AwsEcsExecutor (``make bench``).

Everything runs against one moto server in a child process on 127.0.0.1, so both executors pay
the same loopback HTTP cost; API calls are counted exactly with botocore event hooks.
"""
