"""Tracking: open pixel, click redirect, event flushing into profiles; bounces and complaints."""
