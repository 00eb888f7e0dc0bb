"""Time-based work: the due-event queue (``scheduled_events``) and its sweeper."""
