"""Texts (and their buttons) built from the plain values services return."""
