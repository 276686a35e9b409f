"""The builtin processing: hits, peaks, properties, classification, positions, interactions, corrections."""
