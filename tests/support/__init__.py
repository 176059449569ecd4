"""Shared test support: sample events, the moto control plane, in-process handlers."""
