"""Permutation alignment of two networks (weight matching)."""
