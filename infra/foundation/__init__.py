"""The platform every component builds on: network, data key, buckets, access logs, event delivery, hardening."""
