"""Attributions of a trained model's answers to image regions (Grad-CAM)."""
