"""Kafka streaming helpers, one job per module.

- ``topics``: topic names, in one place so producers and consumers cannot disagree.
- ``topic_keeper``: creating topics, and :class:`TopicKeeper`, which keeps them existing.
- ``broker``: whether a broker is there at all (a TCP connect).
- ``producer``: acks=all producers, created lazily, and ``send_all`` for asyncio.
- ``consumer_loop``: the one consumer-loop shape (commit only after the handler succeeded).
- ``consumer_worker``: a consumer loop on a background thread next to an HTTP shell.
- ``dead_letters``: decoding ``events`` records and forwarding the bad ones to ``events.dlq``.
- ``settings``: consumer-group settings shared by every consumer of ``events``.

Nothing is imported here, so reading a topic name never loads kafka-python.
"""
