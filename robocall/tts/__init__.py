"""Text to speech: render messages to WAV (flite, espeak-ng, sox) with a content-addressed cache."""
