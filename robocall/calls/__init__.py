"""Running calls: one greenlet per call feeding its flow machine, status mapping, webhooks."""
