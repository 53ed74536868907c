"""Demo and test material: the generated corpus of model files and the `mlwarden demo` models."""
