"""The models every front end produces and every rule reads."""
