"""Small readers of real facts (host, git, docker, PostgreSQL, HTTP, TLS) used by the prechecks.

Each returns what it measured; judging it against the target profile is the precheck's job.
"""
