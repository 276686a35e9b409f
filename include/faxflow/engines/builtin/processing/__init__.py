"""The builtin processing: hits, peaks, properties, classification, positions, interactions, corrections."""

from faxflow.engines.builtin import kernel_cache

kernel_cache.use()  # before any kernel module is imported
