"""Runners that measure claims of the course (issue 21), each on top of the classification experiment."""
