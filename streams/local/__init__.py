"""The embedded local stack (a Tansu broker and a redis-server from wheels), the demo and the sample generator."""
