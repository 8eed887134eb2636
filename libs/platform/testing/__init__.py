"""Test support: throwaway PostgreSQL clusters and pytest fixtures."""
