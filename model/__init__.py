"""Models (Re3, the RL agent), their geometry, tracking and export."""
