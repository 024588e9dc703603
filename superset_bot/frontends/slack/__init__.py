"""The Slack front end: Bolt app, rate-limited outbox and Block Kit rendering over the engine."""
