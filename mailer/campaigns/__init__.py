"""Campaigns: templates, campaigns, per-recipient rendering, and crash-safe sending."""
