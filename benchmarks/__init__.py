"""Speed and accuracy side by side with peer libraries: `python -m benchmarks all|pricing|matching|...`."""
