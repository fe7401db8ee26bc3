"""MQTT brokers the project runs itself: Mosquitto with the project's config, or embedded amqtt."""
