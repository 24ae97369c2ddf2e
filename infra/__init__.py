"""The ml-delivery Pulumi program: one ComponentResource per concern, wired in ``stack.py``."""
