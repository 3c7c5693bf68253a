"""The gateway's side of rollouts: which arm a user is in, the canary's fallback, the shadow.

The rollout controller (``services/rollouts``) decides; the gateway follows its assignments
(polled every second) and only splits traffic, answers, and measures.
"""
