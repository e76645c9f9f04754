"""Python-backend models for Triton (``model.py`` files that ``facestyle export-triton`` copies into a repository).

They run inside Triton's Python backend, where ``triton_python_backend_utils`` is importable; they are
never imported by the facestyle package itself.
"""
