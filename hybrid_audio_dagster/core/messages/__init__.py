"""Messages: planning (semantic timing, input signatures), building, manifests, retirement."""
