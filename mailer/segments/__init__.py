"""Segments: rule trees over subscriber profiles, validated by a schema and compiled to SQL."""
