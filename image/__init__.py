"""The task image's own code, copied into the image by image/Dockerfile.

A package here only so that ruff, mypy and the tests reach it like any other module; in the image
it runs as a plain script on the image's Python (nothing of this project is installed there).
"""
