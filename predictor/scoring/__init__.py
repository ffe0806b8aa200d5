"""Offline batch scoring: files of rows scored with the checks of the request path."""
