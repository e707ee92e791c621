"""The REST layer: Falcon app factory, thin resources, schemas, error mapping."""
