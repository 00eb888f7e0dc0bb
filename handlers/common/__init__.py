"""Routers shared by both bots."""
