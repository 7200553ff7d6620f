"""Tests of the streaming load generator."""
