"""Model packages, inference backends and the one Ultralytics-compatible decoder."""
