"""AMQP side of the update path: routing keys (pure) and a confirming publisher."""
