"""The builtin simulator: one module per physical step, from instructions to ZLE raw data."""
