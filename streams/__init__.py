"""The customer-journey stream processor: the pure core (`streams.core`) and its live shell."""
