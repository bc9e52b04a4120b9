"""Replaying recorded touchpoints: offline through the pure core, or into Kafka for the live worker."""
