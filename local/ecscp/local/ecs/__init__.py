"""The local ECS: the cluster's setup, moto's side of a task's life, and the container host."""
