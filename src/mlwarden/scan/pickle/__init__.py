"""Pickle analysis as a program: a symbolic stack machine and a judge of what it would run."""
