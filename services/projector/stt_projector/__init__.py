"""The status projector: turns submit and result events into the job states that pollers read."""
