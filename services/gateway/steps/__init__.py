"""The gateway's steps, one module each: what the step does, and its fallback."""
