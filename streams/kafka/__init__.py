"""Every Kafka client the product builds, the batched publish with its partitioner, and topic admin."""
