"""Delivering notifications from the outbox (``storage.interface.OutboxRepository``): a
background task in every server process (``worker.py``), e-mail over SMTP (``email.py``) and
signed operator webhooks (``webhooks.py``). Nothing here runs on a request's path."""
