"""Developer scripts: benchmarks and the helpers they share with the end-to-end tests."""
