"""Test support: the local stack fixture and a PostgREST-faithful way to run SQL as a user."""
