"""The builtin simulator: one module per physical step, from instructions to ZLE raw data."""

from faxflow.engines.builtin import kernel_cache

kernel_cache.use()  # before any kernel module is imported
