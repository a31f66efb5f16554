"""What every domain's wiring shares: asset keys and check names, resources chosen from the environment, IO managers."""
