"""Patrol distribution: consumers and agencies, the pull and lookup API, the reference client."""
