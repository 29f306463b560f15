"""Pulumi components of the Chatchat-on-ACK stack, its typed config and its model catalog."""
