"""Automation that only decides: schedules and sensors return run requests; runs do the work."""
