"""MQTT ingest: decode on the network thread, store in batches on a writer thread, ack after commit."""
