"""Overt: end-to-end encrypted messaging with verifiable abuse reports and accountable,
threshold-controlled lawful access. See README.md and docs/ for the map."""

__version__ = "0.1.0"
