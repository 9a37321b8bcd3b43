"""Tests of the embedcache command line."""
