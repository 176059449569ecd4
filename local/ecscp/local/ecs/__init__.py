"""The local ECS: the cluster's setup and the container host."""
