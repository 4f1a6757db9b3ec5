"""The console at /console: pages for one workspace at a time, over the same core as the HTTP API."""
