"""The ml-delivery CrossGuard policy pack (``policies.py``); run with ``pulumi preview --policy-pack policy``."""
