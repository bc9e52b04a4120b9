"""The worker process: the batch loop and timers around the processor, which drives the core over Redis and Kafka."""
