"""Scheduled syncs (APScheduler 3.x); jobs reference pipeline functions by module path."""
