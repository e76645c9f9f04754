"""Build time: PyTorch models, weight conversion, ONNX export and validation.

Importing this package does not import torch; the modules that need it import it themselves.
"""
