"""The web console: server-rendered pages for people, served by the API process at /console."""
