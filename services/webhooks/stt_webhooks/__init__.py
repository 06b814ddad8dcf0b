"""Webhooks: POST each job's final status to its `callback_url`, signed, retried, dead-lettered.

A consumer group of its own (`stt-webhooks`) on the results topic, so a slow or dead receiver can
only delay other webhooks, never a transcription or a poll. See docs/webhooks.md.
"""
