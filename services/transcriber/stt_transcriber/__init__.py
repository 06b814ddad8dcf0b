"""The transcriber: consumes submit events, runs faster-whisper, publishes result events."""
