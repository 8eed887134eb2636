"""Overload protection: an adaptive limit on calls in flight per process (limit.py), which
the server enforces by shedding calls at once with RESOURCE_EXHAUSTED and RetryInfo
(shedding.py), and budgeted retries of shed calls between services (retries.py). Settings:
settings.py; what they mean and how to tune them: README.md."""
