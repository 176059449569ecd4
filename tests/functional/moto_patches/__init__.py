"""One test per moto patch (ecscp.local.moto_patches), a file per service: moto still needs it,
and it works.

Each test first shows, with moto as released, the behaviour its patch changes, so it fails the
day a moto upgrade fixes that (then delete the patch module and its test); then it applies the
patch and shows AWS's behaviour (the ``patched`` fixture, conftest.py).
"""
