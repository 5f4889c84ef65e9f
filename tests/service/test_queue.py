"""service/queue.py against both real brokers (the SQL transport on SQLite, Redis): how
many messages wait in a queue, and which broker instance answers."""

from __future__ import annotations

from support import Backend

from service.queue import Producer, broker_instance, queue_depth


def test_queue_depth_counts_the_messages_waiting_in_a_queue(backend: Backend):
    settings = backend.settings()
    producer = Producer(settings)
    other = f"{settings.queue}-other"
    assert queue_depth(producer.app, settings.queue) == 0  # never used: no queue yet
    producer.enqueue_training("job-a", 1)
    producer.enqueue_training("job-b", 1)
    producer.enqueue_training("job-c", 1, other)  # the job's own queue
    assert producer.queue_depth() == 2
    assert queue_depth(producer.app, other) == 1
    with producer.app.connection_for_read() as conn:
        queue = conn.SimpleQueue(settings.queue, no_ack=True)
        assert queue.get(timeout=5).payload[0] == ["job-a", 1]
        queue.close()
    assert producer.queue_depth() == 1


def test_broker_instance_names_a_redis_server_and_none_for_the_sql_broker(backend: Backend):
    app = Producer(backend.settings()).app
    instance = broker_instance(app)
    if backend.name == "sqlite":
        assert instance is None  # its messages are rows: no restart loses them
    else:
        assert isinstance(instance, str) and len(instance) == 40  # Redis's run_id
        assert broker_instance(app) == instance  # the same server, call after call
