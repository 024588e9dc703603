"""Fake model APIs on 127.0.0.1 (ephemeral ports) that the real agent CLIs talk to in tests.

anthropic.py (Messages), openai_responses.py (Responses) and openai_chat.py (chat completions)
each keep their own protocol; server.py holds the HTTP server and handler helpers they share.
"""
