"""The web layer: FastAPI routes (api.py), the run websocket (ws.py) and their dependencies.

What this is: thin typed routes over app.services: every route reads or changes a run through
Storage and RunManager, and the websocket fans out live messages through the Hub.
What this is not: training, storage or encoding; those live in app/services and app/core.
"""
