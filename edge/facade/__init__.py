"""The facade camera: objects thrown from height, the floor and window they came from."""
