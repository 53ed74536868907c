"""The dependency audit (``ml06.dependencies``): known vulnerabilities in what a project depends on.

Dependency files (requirements, ``pyproject.toml``, lock files) and installed environments are
read as text or metadata, never imported or executed; their packages are matched against OSV
advisories from an offline export or the OSV API. Entry point: `engine.audit_dependencies`.
"""
