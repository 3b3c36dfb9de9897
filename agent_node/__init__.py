"""The agent process: inbox, registration, heartbeats, radio, and the role plug-ins it runs."""
