"""Storage: database from URL, models, the repository (the only module with queries), migrations."""
